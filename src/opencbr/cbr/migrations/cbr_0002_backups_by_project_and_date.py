"""a project's backups by date

Revision ID: cbr_0002
Revises: cbr_0001
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "cbr_0002"
down_revision: str | None = "cbr_0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cbr_backups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cbr_backups_project_id_created_at", ["project_id", "created_at"], unique=False
        )
        batch_op.drop_index(batch_op.f("ix_cbr_backups_project_id"))


def downgrade() -> None:
    with op.batch_alter_table("cbr_backups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cbr_backups_project_id"), ["project_id"], unique=False)
        batch_op.drop_index("ix_cbr_backups_project_id_created_at")

"""a recipient's shares in the order of its listing

Revision ID: cbr_0003
Revises: cbr_0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cbr_0003"
down_revision: str | None = "cbr_0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cbr_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backup_created_at", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE cbr_members SET backup_created_at = "
        "(SELECT created_at FROM cbr_backups WHERE cbr_backups.id = cbr_members.backup_id)"
    )
    with op.batch_alter_table("cbr_members", schema=None) as batch_op:
        batch_op.alter_column("backup_created_at", existing_type=sa.DateTime(), nullable=False)
        batch_op.create_index(
            "ix_cbr_members_dest_project_id_backup_created_at",
            ["dest_project_id", "backup_created_at", "backup_id"],
            unique=False,
        )
        batch_op.drop_index(batch_op.f("ix_cbr_members_dest_project_id"))


def downgrade() -> None:
    with op.batch_alter_table("cbr_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cbr_members_dest_project_id"), ["dest_project_id"], unique=False
        )
        batch_op.drop_index("ix_cbr_members_dest_project_id_backup_created_at")
        batch_op.drop_column("backup_created_at")

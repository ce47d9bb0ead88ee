"""disk transfers between projects

Revision ID: evs_0004
Revises: evs_0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "evs_0004"
down_revision: str | None = "evs_0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evs_transfers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("volume_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("auth_key_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["volume_id"],
            ["evs_disks.id"],
            name=op.f("fk_evs_transfers_volume_id_evs_disks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evs_transfers")),
        sa.UniqueConstraint("volume_id", name=op.f("uq_evs_transfers_volume_id")),
    )
    with op.batch_alter_table("evs_transfers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evs_transfers_project_id"), ["project_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("evs_transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evs_transfers_project_id"))
    op.drop_table("evs_transfers")

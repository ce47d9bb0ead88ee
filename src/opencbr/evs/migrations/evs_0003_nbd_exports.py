"""NBD exports of disks

Revision ID: evs_0003
Revises: evs_0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "evs_0003"
down_revision: str | None = "evs_0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evs_nbd_exports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("disk_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["disk_id"], ["evs_disks.id"], name=op.f("fk_evs_nbd_exports_disk_id_evs_disks")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["iam_projects.id"],
            name=op.f("fk_evs_nbd_exports_project_id_iam_projects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evs_nbd_exports")),
        sa.UniqueConstraint("disk_id", name=op.f("uq_evs_nbd_exports_disk_id")),
        sa.UniqueConstraint("name", name=op.f("uq_evs_nbd_exports_name")),
    )
    with op.batch_alter_table("evs_nbd_exports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evs_nbd_exports_project_id"), ["project_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("evs_nbd_exports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evs_nbd_exports_project_id"))
    op.drop_table("evs_nbd_exports")

"""external disks (NBD sources) and what each of their backups read

Revision ID: evs_0002
Revises: evs_0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "evs_0002"
down_revision: str | None = "evs_0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evs_external_disks",
        sa.Column("disk_id", sa.String(length=36), nullable=False),
        sa.Column("uri", sa.String(length=1024), nullable=False),
        sa.Column("bitmap", sa.String(length=1023), nullable=False),
        sa.Column("tls_psk_file", sa.String(length=1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["disk_id"],
            ["evs_disks.id"],
            name=op.f("fk_evs_external_disks_disk_id_evs_disks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("disk_id", name=op.f("pk_evs_external_disks")),
    )
    op.create_table(
        "evs_external_reads",
        sa.Column("backup_id", sa.String(length=36), nullable=False),
        sa.Column("disk_id", sa.String(length=36), nullable=False),
        sa.Column("bitmap", sa.String(length=1023), nullable=False),
        sa.Column("bitmap_present", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("marked", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("backup_id", name=op.f("pk_evs_external_reads")),
    )
    with op.batch_alter_table("evs_external_reads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evs_external_reads_disk_id"), ["disk_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("evs_external_reads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evs_external_reads_disk_id"))
    op.drop_table("evs_external_reads")
    op.drop_table("evs_external_disks")

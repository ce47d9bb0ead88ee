"""key rotation: settings and retired key material

Revision ID: kms_0004
Revises: kms_0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "kms_0004"
down_revision: str | None = "kms_0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kms_key_rotations",
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("interval_days", sa.Integer(), nullable=False),
        sa.Column("rotations", sa.Integer(), nullable=False),
        sa.Column("last_rotation_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["kms_keys.id"],
            name=op.f("fk_kms_key_rotations_key_id_kms_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_kms_key_rotations")),
    )
    op.create_table(
        "kms_key_materials",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("material_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("retired_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["kms_keys.id"],
            name=op.f("fk_kms_key_materials_key_id_kms_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kms_key_materials")),
    )
    with op.batch_alter_table("kms_key_materials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kms_key_materials_key_id"), ["key_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("kms_key_materials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kms_key_materials_key_id"))
    op.drop_table("kms_key_materials")
    op.drop_table("kms_key_rotations")

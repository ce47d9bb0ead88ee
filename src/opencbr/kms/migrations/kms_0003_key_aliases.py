"""key aliases (CreateAlias, AssociateAlias, ...)

Revision ID: kms_0003
Revises: kms_0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "kms_0003"
down_revision: str | None = "kms_0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kms_aliases",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("domain_id", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["kms_keys.id"],
            name=op.f("fk_kms_aliases_key_id_kms_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kms_aliases")),
        sa.UniqueConstraint(
            "domain_id", "region", "alias", name=op.f("uq_kms_aliases_domain_id_region_alias")
        ),
    )
    with op.batch_alter_table("kms_aliases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kms_aliases_key_id"), ["key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_kms_aliases_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("kms_aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kms_aliases_project_id"))
        batch_op.drop_index(batch_op.f("ix_kms_aliases_key_id"))
    op.drop_table("kms_aliases")

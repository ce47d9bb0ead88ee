"""a key's tags (CreateKmsTag, BatchCreateKmsTags, ...)

Revision ID: kms_0002
Revises: kms_0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "kms_0002"
down_revision: str | None = "kms_0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("kms_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kms_keys", schema=None) as batch_op:
        batch_op.drop_column("tags")

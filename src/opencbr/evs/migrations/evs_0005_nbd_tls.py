"""NBD exports record the TLS of the server that serves them

Revision ID: evs_0005
Revises: evs_0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "evs_0005"
down_revision: str | None = "evs_0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("evs_nbd_exports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tls", sa.String(length=8), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("evs_nbd_exports", schema=None) as batch_op:
        batch_op.drop_column("tls")

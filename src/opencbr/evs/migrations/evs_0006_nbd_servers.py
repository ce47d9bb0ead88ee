"""The running NBD servers of a deployment

Revision ID: evs_0006
Revises: evs_0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "evs_0006"
down_revision: str | None = "evs_0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evs_nbd_servers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("tls", sa.String(length=8), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evs_nbd_servers")),
    )
    with op.batch_alter_table("evs_nbd_servers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evs_nbd_servers_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("evs_nbd_servers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evs_nbd_servers_seen_at"))
    op.drop_table("evs_nbd_servers")

"""a vault's resource can be suspended from its policy backups (SetVaultResource)

Vault tags need no table: they stay in `cbr_vaults.tags`.

Revision ID: cbr_0004
Revises: cbr_0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cbr_0004"
down_revision: str | None = "cbr_0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cbr_vault_resources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("suspended", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("cbr_vault_resources", schema=None) as batch_op:
        batch_op.drop_column("suspended")

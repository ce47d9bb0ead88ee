"""Alembic environment: runs on the connection handed in by `opencbr.core.db.migrate`."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes.get("target_metadata"),
    include_object=context.config.attributes.get("include_object"),
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()

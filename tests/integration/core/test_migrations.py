"""The migrations and the models describe the same schema, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from opencbr.api.runtime import slice_metadata
from opencbr.core.context import Runtime


def test_the_migrated_schema_is_the_one_the_models_declare(runtime: Runtime) -> None:
    with runtime.database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), slice_metadata())
    assert differences == []

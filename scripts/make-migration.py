#!/usr/bin/env python3
"""Write a new Alembic revision for one slice from the difference between its models and heads.

uv run python scripts/make-migration.py SLICE "message"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from opencbr.api.runtime import migration_locations, slice_metadata
from opencbr.core.db import Database, migrate


def main() -> None:
    slice_name, message = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite:///{tmp}/schema.db")
        migrate(database, migration_locations())
        config = Config()
        core = Path(__import__("opencbr.core.db").core.db.__file__).parent
        config.set_main_option("script_location", str(core / "migrations"))
        locations = migration_locations()
        config.set_main_option("version_locations", " ".join(str(p) for p in locations))
        config.set_main_option("path_separator", "space")
        config.attributes["target_metadata"] = slice_metadata()
        # Only this slice's tables (named `<slice>_...`; core's is `jobs`) go in its revision.
        prefix = "jobs" if slice_name == "core" else f"{slice_name}_"

        def own_tables(obj: object, name: str | None, type_: str, *_: object) -> bool:
            table = getattr(obj, "table", obj) if type_ != "table" else obj
            table_name = getattr(table, "name", name) or ""
            return str(table_name).startswith(prefix)

        config.attributes["include_object"] = own_tables
        script = ScriptDirectory.from_config(config)
        own = next(p for p in locations if slice_name in (p.parent.name, p.name))
        heads = [
            h for h in script.get_heads() if script.get_revision(h).branch_labels & {slice_name}
        ]
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.revision(
                config,
                message=message,
                autogenerate=True,
                head=heads[0] if heads else "base",
                branch_label=None if heads else slice_name,
                version_path=str(own),
                rev_id=f"{slice_name}_{len(list(own.glob(f'{slice_name}_*.py'))) + 1:04d}",
            )


if __name__ == "__main__":
    main()

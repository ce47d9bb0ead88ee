"""A new database is made at the newest schema by whatever starts on it; an existing one behind
the code is refused, naming `opencbr db upgrade`, which brings it to the newest revision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from opencbr.api.runtime import build_runtime, migration_locations
from opencbr.cli.main import app
from opencbr.core.db import Database, migration_config
from opencbr.core.schema import EXIT_CONFIG, SchemaMismatch, schema_state
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY


def _one_revision_behind(url: str) -> str:
    """A database at the newest revision of every branch but the backup service's, which is
    one behind; the revision it lacks."""
    locations = migration_locations()
    config = migration_config(locations)
    scripts = ScriptDirectory.from_config(config)
    database = Database(url)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        for head in scripts.get_heads():
            revision = scripts.get_revision(head)
            assert revision is not None
            if head.startswith("cbr_"):
                lacking, target = head, revision.down_revision
                assert isinstance(target, str)
                command.upgrade(config, target)
            else:
                command.upgrade(config, head)
    database.dispose()
    return lacking


def _cli(*args: str, expect: int) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == expect, result.output
    return result.output


def test_a_database_behind_the_code_is_refused_until_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    lacking = _one_revision_behind(url)
    settings = Settings(data_dir=tmp_path / "data", database_url=url, root_key=ROOT_KEY)

    with pytest.raises(SchemaMismatch, match="opencbr db upgrade"):
        build_runtime(settings)
    refused = _cli("admin", "tenant", "list", "--database-url", url, expect=EXIT_CONFIG)
    assert "opencbr db upgrade" in refused
    assert "BackupService.9930" in refused
    behind = json.loads(_cli("db", "current", "--database-url", url, "--json", expect=EXIT_CONFIG))
    assert behind["status"] == "behind"
    assert lacking in behind["head"]
    assert lacking not in behind["current"]

    upgraded = json.loads(_cli("db", "upgrade", "--database-url", url, "--json", expect=0))
    assert upgraded["status"] == "at head"
    assert lacking in upgraded["current"]
    assert json.loads(_cli("db", "current", "--database-url", url, "--json", expect=0)) == upgraded
    build_runtime(settings).database.dispose()


def test_a_new_database_is_made_at_head_by_the_first_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    fresh = json.loads(_cli("db", "current", "--database-url", url, "--json", expect=0))
    assert fresh["status"] == "new"
    assert fresh["current"] == []
    runtime = build_runtime(
        Settings(data_dir=tmp_path / "data", database_url=url, root_key=ROOT_KEY)
    )
    state = schema_state(runtime.database, migration_locations())
    runtime.database.dispose()
    assert state.at_head
    assert not state.is_new


def test_a_database_ahead_of_the_code_is_refused_and_not_touched(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    _cli("db", "upgrade", "--database-url", url, expect=0)
    database = Database(url)
    with database.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES ('cbr_9999')")
    database.dispose()
    ahead = _cli("db", "upgrade", "--database-url", url, expect=EXIT_CONFIG)
    assert "cbr_9999" in ahead
    assert (
        json.loads(_cli("db", "current", "--database-url", url, "--json", expect=EXIT_CONFIG))[
            "status"
        ]
        == "ahead"
    )

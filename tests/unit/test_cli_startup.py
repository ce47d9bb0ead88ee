"""The CLI's API verbs start without the server stack: loading the ORM, FastAPI and uvicorn
took a few seconds on every `opencbr disk ...` call. Only `serve`, `worker` and `admin` load
them, when they run."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_STACK = ("sqlalchemy", "fastapi", "uvicorn", "alembic", "opencbr.api.app")


def test_the_cli_loads_without_the_server_stack() -> None:
    probe = (
        "import json, sys, opencbr.cli.main; "
        f"print(json.dumps([m for m in {SERVER_STACK!r} if m in sys.modules]))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(loaded) == []

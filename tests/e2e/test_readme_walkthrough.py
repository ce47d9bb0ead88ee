"""The README's walkthrough, run as written: every command of its "Back up a disk and share it"
blocks, as the demo user the README names, against a live server with job workers.

Placeholders (DISK_ID, VAULT_ID, ...) are filled from what earlier commands printed: the
`--json` document, or the `<kind> id: <id>` line a create prints for people.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from opencbr.core.jobs import WorkerPool
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory

README = Path(__file__).resolve().parents[2] / "README.md"
OPENCBR = str(Path(sys.executable).parent / "opencbr")
MiB = 1 << 20
SECTION = "## Back up a disk and share it"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def walkthrough() -> tuple[list[tuple[str, list[str]]], str]:
    """The section's command blocks with the user each runs as, and its `share cancel`."""
    section = README.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"As `(demo-\w+)`[^\n]*\n+```sh\n(.*?)```", section, re.DOTALL)
    cancel = re.search(r"`((?:uv run )?opencbr share cancel [^`]+)`", section)
    assert blocks, "the README's walkthrough has no command blocks"
    assert cancel, "the README's walkthrough no longer says how to cancel a share"
    return [(user, body.strip().splitlines()) for user, body in blocks], cancel.group(1)


class Walk:
    """Runs README lines as one of two tenants, remembering the ids they print."""

    def __init__(self, server: LiveServer, users: dict[str, TenantCredentials], cwd: Path):
        self.server, self.users, self.cwd = server, users, cwd
        self.ids: dict[str, str] = {}

    def placeholders(self) -> dict[str, str]:
        bob = self.users["demo-bob"].projects["region-1"]
        latest = {f"{kind.upper()}_ID": value for kind, value in self.ids.items()}
        return {**latest, "NEW_DISK_ID": self.ids.get("disk", ""), "BOB_PROJECT_ID": bob}

    def run(self, user: str, line: str) -> str:
        words = shlex.split(line, comments=True)
        assert words[:3] == ["uv", "run", "opencbr"], f"not a CLI line: {line}"
        values = self.placeholders()
        args = [values.get(word, word) for word in words[3:]]
        done = subprocess.run(
            [OPENCBR, *args], env=self._env(user), cwd=self.cwd, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}{done.stdout}"
        self._remember(args[0], done.stdout)
        return done.stdout

    def _env(self, user: str) -> dict[str, str]:
        creds = self.users[user]
        return {
            **os.environ,
            "OPENCBR_ENDPOINT": self.server.url,
            "OPENCBR_ACCESS_KEY": creds.access_key,
            "OPENCBR_SECRET_KEY": creds.secret_key,
            "OPENCBR_PROJECT_ID": creds.projects["region-1"],
            "XDG_CONFIG_HOME": str(self.cwd / f"config-{user}"),
        }

    def _remember(self, noun: str, stdout: str) -> None:
        for kind, value in re.findall(r"^(\w+) id: (\S+)$", stdout, re.MULTILINE):
            self.ids[kind] = value
        if stdout.lstrip().startswith("{"):
            document = json.loads(stdout)
            if "id" in document:
                self.ids[noun] = document["id"]


# The walkthrough is about the words of the README; the databases are covered everywhere else.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readme_walkthrough_runs_as_written(
    server: LiveServer, workers: WorkerPool, make_tenant: TenantFactory, tmp_path: Path
) -> None:
    image = os.urandom(4 * MiB) + bytes(4 * MiB)
    (tmp_path / "disk.img").write_bytes(image)
    users = {"demo-alice": make_tenant(), "demo-bob": make_tenant()}
    walk = Walk(server, users, tmp_path)
    blocks, cancel = walkthrough()
    outputs = [walk.run(user, line) for user, lines in blocks for line in lines]

    assert "pending" in outputs[4]  # Alice's Share List right after sharing
    with open(tmp_path / "copy.img", "rb") as copy:
        assert copy.read(len(image)) == image  # Bob's disk holds Alice's bytes
    walk.run("demo-alice", cancel if cancel.startswith("uv run") else f"uv run {cancel}")
    listed = walk.run("demo-alice", f"uv run opencbr share list {walk.ids['backup']} --json")
    assert json.loads(listed) == []

"""Console forms refused for a backup the user cannot see answer like a backup that does not
exist (S14), with the console's error page: never a 500, whatever else the form got wrong."""

from __future__ import annotations

import re
import uuid

import httpx

from opencbr.console.web import SESSION_COOKIE, csrf_for
from opencbr.core.context import Runtime
from opencbr.iam import service as iam
from tests.conftest import LiveServer, unique

PASSWORD = "console-Passw0rd"


def _signed_in(server: LiveServer, runtime: Runtime) -> tuple[httpx.Client, str]:
    """A console session of a new tenant, signed in through the login form; and its CSRF."""
    with runtime.database.unit_of_work() as session:
        creds = iam.create_tenant(
            session,
            runtime.root_key,
            runtime.settings.regions,
            unique("c"),
            ["region-1"],
            password=PASSWORD,
        )
    client = httpx.Client(base_url=server.url)
    page = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {"username": creds.user_name, "password": PASSWORD, "csrf": csrf[1]}
    assert client.post("/console/login", data=form).status_code == 303
    return client, csrf_for(client.cookies[SESSION_COOKIE])


def test_sharing_a_backup_the_user_cannot_see_answers_not_found(
    server: LiveServer, runtime: Runtime
) -> None:
    client, csrf = _signed_in(server, runtime)
    other = uuid.uuid4().hex
    for added in (["not-a-project"], [uuid.uuid4().hex] * 11, []):
        form = {"csrf": csrf, "added": added, "project_id": "", "step": ""}
        refused = client.post(f"/console/cbr/disk/backups/{other}/share", data=form)
        assert refused.status_code == 404, refused.text
        shown = client.get(f"/console/cbr/disk/backups/{other}/share")
        assert shown.status_code == 404

"""The OpenAPI document tells the truth: every answer a live server gives in a tenant's usual
work (disks, vaults, backups, sharing, policies, logs, KMS, IAM) is validated against the
response schema the document gives its route and status; refusals against the documented error
bodies. The fuzz suite (test_fuzz.py) checks the same for generated requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencbr.core.context import Runtime
from opencbr.core.jobs import WorkerPool
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows

Answer = tuple[str, str, int, bytes]  # method, route template, status, body


class Recorder:
    """Keeps each answer of the app with the route that gave it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.answers: list[Answer] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, parts = 0, []

        async def keep(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, keep)
        route = getattr(scope.get("route"), "path", None)
        if isinstance(route, str):
            self.answers.append((scope["method"], route, status, b"".join(parts)))


@pytest.fixture
def recorded(runtime: Runtime) -> Iterator[tuple[LiveServer, Recorder]]:
    live = LiveServer(runtime)
    recorder = Recorder(live.server.config.app)
    live.server.config.app = recorder
    with live:
        yield live, recorder


def _work(url: str, owner: TenantCredentials, recipient: TenantCredentials) -> None:
    """A tenant's usual calls, and a few refusals."""
    mine, theirs = flows.tenant_clients(url, owner), flows.tenant_clients(url, recipient)
    own, other = mine.data, theirs.data
    base, their_base = f"/v3/{mine.project}", f"/v3/{theirs.project}"
    disk = flows.create_disk(mine.evs, "conformance")
    vault = flows.disk_vault(mine.cbr, "conformance", 10, [disk])
    backup = flows.back_up(mine.cbr, vault.id, "conformance")
    own.request("GET", f"{base}/vaults")
    own.request("GET", f"{base}/vaults/{vault.id}")
    own.request("PUT", f"{base}/vaults/{vault.id}", {"vault": {"name": "renamed"}})
    own.request("GET", f"{base}/backups", params={"vault_id": vault.id})
    own.request("GET", f"{base}/backups/{backup.id}")
    own.request("PUT", f"{base}/backups/{backup.id}", {"backup": {"name": "kept"}})
    own.request("GET", f"{base}/checkpoints/{backup.checkpoint_id}")
    own.request("POST", f"{base}/backups/{backup.id}/members", {"members": [theirs.project]})
    own.request("GET", f"{base}/backups/{backup.id}/members")
    own.request("GET", f"{base}/backups/{backup.id}/members/{theirs.project}")
    their_vault = flows.disk_vault(theirs.cbr, "received", 10, [])
    accept = {"status": "accepted", "vault_id": their_vault.id}
    other.request("PUT", f"{their_base}/backups/{backup.id}/members/{theirs.project}", accept)
    other.request("GET", f"{their_base}/backups", params={"own_type": "shared"})
    other.request("GET", f"{their_base}/backups/{backup.id}")
    trigger = {"properties": {"pattern": ["FREQ=DAILY;INTERVAL=1;BYHOUR=14;BYMINUTE=00"]}}
    policy = own.request(
        "POST",
        f"{base}/policies",
        {
            "policy": {
                "name": "nightly",
                "operation_type": "backup",
                "operation_definition": {"retention_duration_days": 7},
                "trigger": trigger,
            }
        },
    )["policy"]
    own.request("GET", f"{base}/policies")
    own.request("GET", f"{base}/policies/{policy['id']}")
    own.request("PUT", f"{base}/policies/{policy['id']}", {"policy": {"name": "weekly"}})
    volumes = f"/v2/{mine.project}/cloudvolumes"
    own.request("GET", volumes)
    own.request("GET", f"{volumes}/detail")
    server = own.request(
        "POST",
        f"/v1/{mine.project}/servers",
        {"server": {"name": "conformance", "system_disk": {"size": 1}}},
    )["server"]
    own.request("GET", f"/v1/{mine.project}/servers")
    own.request("GET", f"/v1/{mine.project}/servers/{server['id']}")
    logs = own.request("GET", f"{base}/operation-logs")["operation_logs"]
    own.request("GET", f"{base}/operation-logs/{logs[0]['id']}")
    kms = f"/v1.0/{mine.project}/kms"
    key = own.request("POST", f"{kms}/create-key", {"key_alias": "conformance"})["key_info"]
    keyed = {"key_id": key["key_id"]}
    own.request("POST", f"{kms}/describe-key", keyed)
    own.request("POST", f"{kms}/list-keys", {})
    made = own.request("POST", f"{kms}/create-datakey", {**keyed, "datakey_length": "512"})
    own.request(
        "POST",
        f"{kms}/decrypt-datakey",
        {**keyed, "cipher_text": made["cipher_text"], "datakey_cipher_length": "64"},
    )
    grant = {
        **keyed,
        "grantee_principal": recipient.domain_id,
        "grantee_principal_type": "domain",
        "operations": ["describe-key"],
    }
    own.request("POST", f"{kms}/create-grant", grant)
    own.request("POST", f"{kms}/list-grants", keyed)
    own.request("POST", f"{kms}/enable-key-rotation", keyed)
    own.request("POST", f"{kms}/get-key-rotation-status", keyed)
    own.request("POST", f"{kms}/disable-key", keyed)
    own.request("GET", "/v3/auth/domains")
    own.request("GET", "/v3/auth/projects")
    own.request("GET", "/opencbr/v1/whoami")
    own.request("GET", "/v3/projects")
    own.request("GET", f"/v3/projects/{mine.project}")
    agency = {
        "name": "EVSAccessKMS",
        "domain_id": owner.domain_id,
        "trust_domain_name": "op_svc_evs",
    }
    own.request("POST", "/v3.0/OS-AGENCY/agencies", {"agency": agency})
    own.request("GET", "/v3.0/OS-AGENCY/agencies")
    password = {
        "user": {
            "name": owner.user_name,
            "password": owner.password,
            "domain": {"name": owner.domain_name},
        }
    }
    auth = {
        "identity": {"methods": ["password"], "password": password},
        "scope": {"project": {"id": mine.project}},
    }
    assert httpx.post(f"{url}/v3/auth/tokens", json={"auth": auth}).status_code == 201
    for refused in (f"{base}/backups/{'0' * 32}", f"/v1.0/{mine.project}/kms/describe-key"):
        with pytest.raises(Exception):  # noqa: B017 (any refusal: its body is checked)
            own.request("POST" if "kms" in refused else "GET", refused, {"key_id": "x"})


def test_every_answer_matches_the_document(
    recorded: tuple[LiveServer, Recorder], workers: WorkerPool, make_tenant: TenantFactory
) -> None:
    live, recorder = recorded
    _work(live.url, make_tenant(), make_tenant())
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    document: dict[str, Any] = httpx.get(live.url + "/openapi.json").json()
    checked: set[tuple[str, str]] = set()
    failures: list[str] = []
    for method, route, status, body in recorder.answers:
        if route not in document["paths"]:
            continue  # not in the document (probes, the console)
        operation = schema[route][method]
        response = schemathesis.Response(
            status_code=status,
            headers={"content-type": ["application/json"]} if body else {},
            content=body,
            request=requests.Request(method, live.url + route).prepare(),
            elapsed=0.0,
            verify=True,
        )
        try:
            operation.validate_response(response)
        except BaseExceptionGroup as error:  # the schema's failures, each with its reason
            failures.append(f"{method} {route} -> {status}: {error.exceptions}")
        responses = document["paths"][route][method.lower()]["responses"]
        documented = responses.get(str(status), {}).get("content", {})
        if (
            200 <= status < 300
            and body
            and not documented.get("application/json", {}).get("schema")
        ):
            failures.append(f"{method} {route} -> {status}: no response model")
        checked.add((method, route))
    assert not failures, "\n".join(failures)
    assert len(checked) >= 20, sorted(checked)

"""Values a field cannot hold get the service's 400 and change nothing, never a 500: schema
bounds of the reference, and the database's own limits as a last line."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opencbr.cli.client import ApiError, Client
from opencbr.core.context import Runtime
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows


def _refused(call: Any) -> tuple[int, str, str]:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.status, caught.value.code, caught.value.message


def _signed_client(server: LiveServer, make_tenant: TenantFactory) -> tuple[Client, str]:
    """A new tenant's signed client and its region-1 project."""
    creds = make_tenant()
    return flows.data_client(server.url, creds), creds.projects["region-1"]


def _vault_body(**vault: Any) -> dict[str, Any]:
    billing = {"object_type": "disk", "protect_type": "backup", "size": 10}
    billing.update(vault.pop("billing", {}))
    return {"vault": {"name": "v", "billing": billing, **vault}}


def test_cbr_fields_are_bounded_and_refusals_change_nothing(
    server: LiveServer, make_tenant: TenantFactory, runtime: Runtime
) -> None:
    client, project = _signed_client(server, make_tenant)
    vaults = f"/v3/{project}/vaults"
    for body in (
        _vault_body(description="d" * 65),
        _vault_body(enterprise_project_id="e" * 65),
        _vault_body(billing={"consistent_level": "whatever"}),
    ):
        assert _refused(lambda body=body: client.request("POST", vaults, body))[:2] == (
            400,
            "BackupService.9900",
        )
    assert client.request("GET", vaults)["count"] == 0

    vault = client.request("POST", vaults, _vault_body())["vault"]
    checkpoints = f"/v3/{project}/checkpoints"
    for days in (0, 36501, 3_000_000, 10**12):
        params = {"retention_duration_days": days}
        body = {"checkpoint": {"vault_id": vault["id"], "parameters": params}}
        assert _refused(lambda body=body: client.request("POST", checkpoints, body))[:2] == (
            400,
            "BackupService.9900",
        )
    for path in (f"/v3/{project}/backups", vaults, f"/v3/{project}/operation-logs"):
        refusal = _refused(lambda path=path: client.request("GET", path, params={"offset": 2**63}))
        assert refusal[:2] == (400, "BackupService.9900")


def test_a_value_the_database_cannot_store_is_bad_input(
    server: LiveServer, make_tenant: TenantFactory, runtime: Runtime
) -> None:
    """A NUL character passes the schema; PostgreSQL text cannot hold it, SQLite can."""
    client, project = _signed_client(server, make_tenant)
    vaults = f"/v3/{project}/vaults"
    body = _vault_body(description="before\x00after")
    if runtime.database.engine.dialect.name == "postgresql":
        status, code, message = _refused(lambda: client.request("POST", vaults, body))
        assert (status, code) == (400, "BackupService.9900")
        assert "too long or out of range" in message
        assert client.request("GET", vaults)["count"] == 0
    else:
        made = client.request("POST", vaults, body)["vault"]
        assert made["description"] == "before\x00after"


def test_bodies_that_cannot_be_read_are_refused_clearly(server: LiveServer) -> None:
    url = server.url + "/v3/auth/tokens"
    not_utf8 = httpx.post(
        url, content=b'{"auth": "\xff\xfe"}', headers={"content-type": "application/json"}
    )
    assert not_utf8.status_code == 400
    assert not_utf8.json()["error_code"] == "IAM.0011"  # the called service's family

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        yield b"{"
        for _ in range(13):
            yield b" " * (1024 * 1024)
        yield b"}"

    chunked = httpx.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert chunked.json()["error_code"] == "APIGW.0413"

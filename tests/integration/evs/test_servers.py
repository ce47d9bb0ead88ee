"""Servers through the HTTP API (SQLite and PostgreSQL): create with new and existing disks,
attach, detach, stop, start, delete with and without disks, and refused requests."""

from __future__ import annotations

from typing import Any

from opencbr.core.context import Runtime

from .conftest import Tenant, TenantMaker, api_error, create_disk, run_jobs


def _servers(tenant: Tenant, suffix: str = "") -> str:
    return f"/v1/{tenant.project}/servers{suffix}"


def _create_server(runtime: Runtime, owner: Tenant, existing: str | None = None) -> dict[str, Any]:
    data_disks: list[dict[str, Any]] = [{"size": 2, "volume_type": "SSD"}]
    if existing:
        data_disks.append({"volume_id": existing})
    body = {"server": {"name": "web", "system_disk": {"size": 1}, "data_disks": data_disks}}
    created = owner.client.request("POST", _servers(owner), body)
    assert created["server"]["status"] == "BUILD"
    run_jobs(runtime)
    server: dict[str, Any] = owner.client.request(
        "GET", _servers(owner, f"/{created['server']['id']}")
    )["server"]
    return server


def test_server_lifecycle(runtime: Runtime, tenant: TenantMaker) -> None:
    owner = tenant()
    spare = create_disk(runtime, owner, name="spare")
    server = _create_server(runtime, owner, existing=spare)
    assert server["status"] == "ACTIVE"
    disks = server["volumes_attached"]
    assert [d["device"] for d in disks] == ["/dev/vda", "/dev/vdb", "/dev/vdc"]
    assert disks[0]["bootable"] is True
    assert {d["status"] for d in disks} == {"in-use"}
    assert disks[2]["id"] == spare
    sid = server["id"]

    owner.client.request("POST", _servers(owner, f"/{sid}/detach"), {"volume_id": spare})
    shown = owner.client.request("GET", owner.path(f"/{spare}"))["volume"]
    assert (shown["status"], shown["attachments"]) == ("available", [])
    owner.client.request("POST", _servers(owner, f"/{sid}/attach"), {"volume_id": spare})
    shown = owner.client.request("GET", owner.path(f"/{spare}"))["volume"]
    assert shown["status"] == "in-use"
    assert shown["attachments"][0]["server_id"] == sid

    system = disks[0]["id"]
    error = api_error(
        lambda: owner.client.request(
            "POST", _servers(owner, f"/{sid}/detach"), {"volume_id": system}
        )
    )
    assert error.code == "EVS.0415"
    owner.client.request("POST", _servers(owner, f"/{sid}/stop"))
    error = api_error(lambda: owner.client.request("POST", _servers(owner, f"/{sid}/stop")))
    assert error.code == "EVS.0410"
    owner.client.request("POST", _servers(owner, f"/{sid}/detach"), {"volume_id": system})
    owner.client.request("POST", _servers(owner, f"/{sid}/start"))

    owner.client.request("DELETE", _servers(owner, f"/{sid}"))  # keeps the disks
    for disk in disks:
        assert owner.client.request("GET", owner.path(f"/{disk['id']}"))["volume"]["status"] == (
            "available"
        )
    listed = owner.client.request("GET", _servers(owner))
    assert listed["servers"] == []


def test_delete_server_with_its_disks(runtime: Runtime, tenant: TenantMaker) -> None:
    owner = tenant()
    server = _create_server(runtime, owner)
    answer = owner.client.request(
        "DELETE", _servers(owner, f"/{server['id']}"), params={"delete_disks": True}
    )
    assert len(answer["job_ids"]) == 2
    run_jobs(runtime)
    assert owner.client.request("GET", owner.path("/detail"))["count"] == 0


def test_attached_disks_are_protected(runtime: Runtime, tenant: TenantMaker) -> None:
    owner = tenant()
    first = _create_server(runtime, owner)
    second = _create_server(runtime, owner)
    data_disk = first["volumes_attached"][1]["id"]
    error = api_error(
        lambda: owner.client.request(
            "POST", _servers(owner, f"/{second['id']}/attach"), {"volume_id": data_disk}
        )
    )
    assert (error.status, error.code) == (400, "EVS.0411")
    assert first["id"] in error.message
    error = api_error(lambda: owner.client.request("DELETE", owner.path(f"/{data_disk}")))
    assert (error.status, error.code) == (400, "EVS.0411")
    shown = owner.client.request("GET", owner.path(f"/{data_disk}"))["volume"]
    assert (shown["status"], shown["attachments"][0]["server_id"]) == ("in-use", first["id"])
    error = api_error(
        lambda: owner.client.request(
            "POST", _servers(owner, f"/{second['id']}/detach"), {"volume_id": data_disk}
        )
    )
    assert error.code == "EVS.0416"


def test_other_tenants_servers_are_invisible(runtime: Runtime, tenant: TenantMaker) -> None:
    owner, outsider = tenant(), tenant()
    server = _create_server(runtime, owner)
    spare = create_disk(runtime, outsider)
    for call in (
        lambda: outsider.client.request("GET", _servers(outsider, f"/{server['id']}")),
        lambda: outsider.client.request("POST", _servers(outsider, f"/{server['id']}/stop")),
        lambda: outsider.client.request(
            "POST", _servers(outsider, f"/{server['id']}/attach"), {"volume_id": spare}
        ),
        lambda: outsider.client.request("DELETE", _servers(outsider, f"/{server['id']}")),
    ):
        error = api_error(call)
        assert (error.status, error.code) == (404, "EVS.0405")
    error = api_error(
        lambda: owner.client.request(
            "POST", _servers(owner, f"/{server['id']}/attach"), {"volume_id": spare}
        )
    )
    assert (error.status, error.code) == (404, "EVS.0404")
    body = {"server": {"name": "x", "system_disk": {"volume_id": spare}}}
    error = api_error(lambda: owner.client.request("POST", _servers(owner), body))
    assert error.code == "EVS.0404"
    assert owner.client.request("GET", _servers(owner))["count"] == 1

"""EVS test helpers: a signed client for a tenant on the live server, and running jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from opencbr.cli.client import ApiError, Client, Profile
from opencbr.core.context import Runtime
from opencbr.core.jobs import run_one
from opencbr.evs.jobs import handlers as evs_handlers
from opencbr.iam.agencies import EVS_KMS_AGENCY, create_agency
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory


@dataclass
class Tenant:
    creds: TenantCredentials
    client: Client

    @property
    def project(self) -> str:
        return self.creds.projects["region-1"]

    def path(self, suffix: str) -> str:
        return f"/v2/{self.project}/cloudvolumes{suffix}"


def run_jobs(runtime: Runtime) -> int:
    """Run every due EVS job in this thread; the number run."""
    handlers = evs_handlers(runtime)
    done = 0
    while run_one(runtime.database, handlers, "test-worker"):
        done += 1
    return done


def grant_agency(runtime: Runtime, domain_id: str) -> None:
    with runtime.database.unit_of_work() as session:
        create_agency(session, domain_id, EVS_KMS_AGENCY, "op_svc_evs")


def client_for(url: str, creds: TenantCredentials, region: str = "region-1") -> Client:
    return Client(Profile(url, creds.access_key, creds.secret_key, creds.projects[region]))


TenantMaker = Callable[..., Tenant]


@pytest.fixture
def tenant(server: LiveServer, make_tenant: TenantFactory, runtime: Runtime) -> TenantMaker:
    def make(agency: bool = True) -> Tenant:
        creds = make_tenant()
        if agency:
            grant_agency(runtime, creds.domain_id)
        return Tenant(creds, client_for(server.url, creds))

    return make


def create_disk(
    runtime: Runtime, tenant: Tenant, size_gb: int = 1, encrypted: bool = False, **extra: Any
) -> str:
    """A disk made through the wire API and provisioned by its job; its id."""
    volume: dict[str, Any] = {
        "name": extra.pop("name", "d"),
        "size": size_gb,
        "availability_zone": extra.pop("availability_zone", "az1"),
        "volume_type": "SAS",
        **extra,
    }
    if encrypted:
        volume["metadata"] = {"__system__encrypted": "1"}
    answer = tenant.client.request(
        "POST", f"/v2.1/{tenant.project}/cloudvolumes", {"volume": volume}
    )
    run_jobs(runtime)
    disk_id: str = answer["volume_ids"][0]
    shown = tenant.client.request("GET", tenant.path(f"/{disk_id}"))["volume"]
    assert shown["status"] == "available", shown
    return disk_id


def write(tenant: Tenant, disk_id: str, offset: int, data: bytes) -> Any:
    return tenant.client.upload(
        tenant.path(f"/{disk_id}/data"), iter([data]), len(data), {"offset": offset}
    )


def read(tenant: Tenant, disk_id: str, offset: int, length: int) -> bytes:
    return b"".join(
        tenant.client.download(
            tenant.path(f"/{disk_id}/data"), {"offset": offset, "length": length}
        )
    )


def api_error(call: Callable[[], Any]) -> ApiError:
    try:
        call()
    except ApiError as exc:
        return exc
    raise AssertionError("the call succeeded")


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)

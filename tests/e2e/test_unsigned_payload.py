"""Only the disk data stream may leave its body out of the signature (`X-Sdk-Content-Sha256:
UNSIGNED-PAYLOAD`, as the SDK sends non-JSON bodies). Any other route hashes its body whatever
the request claims and whatever its content type is called, so a body nobody signed is never
acted on."""

from __future__ import annotations

import json

import httpx
import pytest

from opencbr.core.jobs import WorkerPool
from opencbr.iam.signing import UNSIGNED_PAYLOAD
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e.service_errors import service_error
from tests.e2e.signed import sign


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON", "application/merge-patch+json", "text/plain"],
)
def test_a_json_route_never_takes_an_unsigned_body(
    server: LiveServer, make_tenant: TenantFactory, content_type: str
) -> None:
    creds = make_tenant()
    project = creds.projects["region-1"]
    url = f"{server.url}/v3/{project}/vaults"
    body = json.dumps({"vault": {"name": "v", "billing": {"object_type": "disk", "size": 10}}})
    extra = {"content-type": content_type, "x-sdk-content-sha256": UNSIGNED_PAYLOAD}
    headers = sign(
        "POST",
        url,
        creds.access_key,
        creds.secret_key,
        b"",
        extra_headers=extra,
        payload_hash=UNSIGNED_PAYLOAD,
    )
    refused = httpx.post(url, content=body.encode(), headers=headers)
    assert refused.status_code == 401
    assert service_error(refused)[0] == "APIGW.0301"
    assert flows.data_client(server.url, creds).request("GET", url[len(server.url) :])["count"] == 0


def test_the_disk_data_stream_may_be_unsigned(
    server: LiveServer, make_tenant: TenantFactory, workers: WorkerPool
) -> None:
    creds = make_tenant()
    clients = flows.tenant_clients(server.url, creds)
    disk = flows.create_disk(clients.evs, "streamed")
    flows.write(clients.data, clients.project, disk, 512, b"x" * 1024)  # signed UNSIGNED-PAYLOAD
    assert flows.read(clients.data, clients.project, disk, 512, 1024) == b"x" * 1024

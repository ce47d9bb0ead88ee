"""JSON bodies the parser must never see: lone surrogates (which no response, message or column
can encode) and nesting deep enough to exhaust its recursion. Every JSON route of the OpenAPI
document refuses both with its service's 400, before the body is parsed; a well-formed body
with a surrogate pair (an emoji) still works."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from opencbr.core.json_input import MAX_JSON_DEPTH
from tests.conftest import LiveServer, TenantFactory
from tests.e2e.service_errors import service_error
from tests.e2e.signed import sign

LONE = json.dumps({"name": "\ud800"}).encode()  # b'{"name": "\\ud800"}'
ENCODED = b'{"name": "\xed\xa0\x80"}'  # the same surrogate as raw UTF-8-style bytes
DEEP_ARRAYS = b"[" * 3000 + b"]" * 3000
DEEP_OBJECTS = b'{"a":' * 2000 + b"1" + b"}" * 2000


def _post(
    server: LiveServer, creds: Any, path: str, body: bytes, method: str = "POST"
) -> httpx.Response:
    url = server.url + path
    headers = sign(method, url, creds.access_key, creds.secret_key, body)
    return httpx.request(method, url, content=body, headers=headers, timeout=30)


def _refused(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    code, message = service_error(response)
    assert "\\ud800" not in message
    return code


def test_a_lone_surrogate_is_refused_and_never_stored(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    project = creds.projects["region-1"]
    vault = {"vault": {"name": "\ud800", "billing": {"object_type": "disk", "size": 10}}}
    vaults = _post(server, creds, f"/v3/{project}/vaults", json.dumps(vault).encode())
    assert _refused(vaults) == "BackupService.9900"

    disks = f"/v2.1/{project}/cloudvolumes"
    for extra in ({"metadata": {"k": "\ud800"}}, {"tags": {"\udc00": "v"}}):
        volume = {"availability_zone": "az1", "volume_type": "SAS", "size": 1, **extra}
        body = json.dumps({"volume": volume}).encode()
        assert _refused(_post(server, creds, disks, body)) == "EVS.0400"
    assert _refused(_post(server, creds, disks, ENCODED)) == "EVS.0400"

    listed = _post(server, creds, f"/v2/{project}/cloudvolumes/detail", b"", method="GET")
    assert listed.status_code == 200
    assert listed.json()["count"] == 0

    volume = {"availability_zone": "az1", "volume_type": "SAS", "size": 1}
    volume["metadata"] = {"k": "\ud83d\ude00"}  # a pair: one character
    assert _post(server, creds, disks, json.dumps({"volume": volume}).encode()).status_code < 300
    listed = _post(server, creds, f"/v2/{project}/cloudvolumes/detail", b"", method="GET")
    assert listed.json()["volumes"][0]["metadata"]["k"] == "\U0001f600"


@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["arrays", "objects"])
def test_deep_nesting_is_refused_before_parsing(
    server: LiveServer, make_tenant: TenantFactory, body: bytes
) -> None:
    creds = make_tenant()
    project = creds.projects["region-1"]
    assert _refused(_post(server, creds, f"/v3/{project}/vaults", body)) == "BackupService.9900"
    refusal = _post(server, creds, f"/v2.1/{project}/cloudvolumes", body)
    assert _refused(refusal) == "EVS.0400"
    assert str(MAX_JSON_DEPTH) in service_error(refusal)[1]


def _json_routes(server: LiveServer) -> list[tuple[str, str]]:
    """Every (method, path template) of the OpenAPI document that takes a JSON body."""
    document = httpx.get(server.url + "/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


def test_every_json_route_refuses_surrogates_and_deep_nesting(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    project = creds.projects["region-1"]
    routes = _json_routes(server)
    assert len(routes) > 20
    for method, template in routes:
        path = template.replace("{project_id}", project)
        while "{" in path:
            start, end = path.index("{"), path.index("}")
            path = path[:start] + uuid.uuid4().hex + path[end + 1 :]
        for body in (LONE, ENCODED, DEEP_ARRAYS, DEEP_OBJECTS):
            response = _post(server, creds, path, body, method=method)
            assert response.status_code == 400, (method, template, body[:20], response.text)
            service_error(response)

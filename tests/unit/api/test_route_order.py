"""A fixed path is never answered by a route with a parameter in its place, and each
published operation the service does not serve answers "not supported" (APIGW.0101)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match, Route

from opencbr.api.app import create_app
from opencbr.api.route_order import not_supported_operations, specific_first
from opencbr.api.runtime import build_runtime
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY

AN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    data = tmp_path_factory.mktemp("routes") / "data"
    runtime = build_runtime(Settings(data_dir=data, root_key=ROOT_KEY))
    try:
        yield create_app(runtime)
    finally:
        runtime.database.dispose()


def _endpoint(path: str) -> None:
    return None


def test_a_fixed_segment_goes_before_a_parameter_whatever_the_order_of_registration() -> None:
    routes = [
        Route("/v/{p}/vaults/{vault_id}", _endpoint, methods=["GET"]),
        Route("/v/{p}/vaults/{vault_id}", _endpoint, methods=["PUT"]),
        Route("/v/{p}/vaults", _endpoint, methods=["GET"]),
        Route("/v/{p}/vaults/external", _endpoint, methods=["GET"]),
        Route("/v/{p}/vaults/batch-update", _endpoint, methods=["PUT"]),
        Route("/v/{p}/vaults/summary", _endpoint, methods=["POST"]),  # no GET/PUT to shadow
    ]
    ordered = [(r.path, sorted(r.methods or ())) for r in specific_first(routes)]
    assert ordered == [
        ("/v/{p}/vaults/external", ["GET", "HEAD"]),
        ("/v/{p}/vaults/{vault_id}", ["GET", "HEAD"]),
        ("/v/{p}/vaults/batch-update", ["PUT"]),
        ("/v/{p}/vaults/{vault_id}", ["PUT"]),
        ("/v/{p}/vaults", ["GET", "HEAD"]),
        ("/v/{p}/vaults/summary", ["POST"]),
    ]


def test_each_not_supported_operation_reaches_its_own_route(app: FastAPI) -> None:
    operations = not_supported_operations()
    assert len(operations) > 20
    for operation in operations:
        if operation.path == "/" or operation.path.startswith("/{"):
            continue  # catch-alls are answered by the app's "not found" (APIGW.0101)
        path = re.sub(r"{[^}]+}", AN_ID, operation.path)
        scope = {"type": "http", "method": operation.method, "path": path, "root_path": ""}
        first = next(route for route in app.router.routes if route.matches(scope)[0] == Match.FULL)
        assert isinstance(first, Route)
        assert first.path == operation.path, f"{operation.sdk_method} reaches {first.path}"


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("GET", f"/v3/{AN_ID}/agents", "ListAgent"),
        ("POST", f"/v3/{AN_ID}/agents", "RegisterAgent"),
        ("POST", f"/v2/{AN_ID}/cloudvolumes/change-charge-mode", "ChangeVolumeChargeMode"),
        ("POST", f"/v1.0/{AN_ID}/kms/sign", "Sign"),
    ],
)
def test_a_not_supported_operation_answers_apigw_0101_naming_it(
    app: FastAPI, method: str, path: str, operation: str
) -> None:
    if not any(o.operation_id == operation for o in not_supported_operations()):
        pytest.skip(f"{operation} is served now")
    answer = TestClient(app).request(method, path, json={})
    assert answer.status_code == 404
    body = answer.json()
    assert body["error_code"] == "APIGW.0101"
    assert f"The API {operation} " in body["error_msg"]
    assert "not supported" in body["error_msg"]


def test_iam_bad_input_answers_in_iams_family(app: FastAPI) -> None:
    answer = TestClient(app).post("/v3/auth/tokens", json={"auth": {}})
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "IAM.0011"

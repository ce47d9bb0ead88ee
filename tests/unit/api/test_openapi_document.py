"""The OpenAPI document describes the service as it is: every operation that answers JSON
gives its body's schema, refusals are the service's error bodies (no `HTTPValidationError`),
and the ways of signing are declared. That the schemas match real answers is checked against
a live server (tests/e2e/test_openapi_conformance.py, test_fuzz.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opencbr.api.app import create_app
from opencbr.api.runtime import build_runtime
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY


def _document(tmp_path: Path) -> dict[str, Any]:
    runtime = build_runtime(Settings(data_dir=tmp_path / "data", root_key=ROOT_KEY))
    try:
        document: dict[str, Any] = create_app(runtime).openapi()
        return document
    finally:
        runtime.database.dispose()


def test_every_operation_documents_its_answer_and_its_refusals(tmp_path: Path) -> None:
    document = _document(tmp_path)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"ErrorBody", "ServiceError", "KmsError", "EvsError"} <= set(schemas)
    undocumented = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses
            assert {"400", "default"} <= set(responses), f"{method} {path}"
            for status, response in responses.items():
                json = response.get("content", {}).get("application/json")
                if status.startswith("2") and json is not None and not json.get("schema"):
                    undocumented.append(f"{method.upper()} {path} {status}")
    assert undocumented == []


def test_the_signature_and_the_token_are_security_schemes(tmp_path: Path) -> None:
    document = _document(tmp_path)
    schemes = document["components"]["securitySchemes"]
    assert schemes["SdkHmacSha256"] == {**schemes["SdkHmacSha256"], "in": "header"}
    assert schemes["AuthToken"]["name"] == "X-Auth-Token"
    assert document["security"] == [{"SdkHmacSha256": []}, {"AuthToken": []}]
    token = document["paths"]["/v3/auth/tokens"]["post"]
    assert token["security"] == []  # a user name and a password
    scrubs = document["paths"]["/v1/admin/store/scrubs"]["post"]
    assert scrubs["security"] == [{"OperatorToken": []}]

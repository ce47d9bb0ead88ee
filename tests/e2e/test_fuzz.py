"""A fuzz suite over the app's own OpenAPI document: schemathesis generates requests for every
operation, both fitting the schema (in the tenant's own project, so they reach the services)
and not fitting it (any project, any value); a hook signs each one as the SDK does, and a live
server on SQLite answers them. No answer may be a 5xx, every refusal must be the service's
own error body in its family's envelope (BackupService, EVS, KMS, IAM, APIGW), and every
answer must match the schema the document gives its status. Some JSON bodies
are made hostile on the way (a lone surrogate in every string, or nesting past the limit):
those must get a 400.

The run is bounded (`EXAMPLES` per operation and mode, fewer for password checks, which cost
64 MiB of argon2 each) and prints how many requests it sent. A failing example is shrunk by
Hypothesis and reported with the request that caused it; each one found so far is a regression
test of its own beside the fix."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from opencbr.core.clock import utcnow
from opencbr.core.jobs import WorkerPool
from opencbr.core.json_input import MAX_JSON_DEPTH
from opencbr.iam import signing
from opencbr.iam.service import TenantCredentials
from tests.conftest import LiveServer, TenantFactory
from tests.e2e import flows
from tests.e2e.service_errors import service_error

EXAMPLES = 12
"""Generated requests per operation and generation mode."""
COSTLY = {
    ("POST", "/v3/auth/tokens"): 5,
    ("GET", "/v2/{project_id}/cloudvolumes/{volume_id}/data"): 2,
}
"""Operations that check a password (argon2, 64 MiB each) or read a whole disk: fewer."""


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The fuzz suite runs on SQLite; the services are tested on both databases elsewhere."""
    return f"sqlite:///{tmp_path / 'opencbr.db'}"


class SdkSignature(requests.auth.AuthBase):
    """Signs each request with the tenant's access key (SDK-HMAC-SHA256, the body hashed),
    the hook through which every generated request goes; counts the requests it signs."""

    def __init__(self, creds: TenantCredentials) -> None:
        self.creds = creds
        self.sent = 0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(request.url or "")
        body = request.body or b""
        content = body.encode() if isinstance(body, str) else body
        headers = {"Host": url.netloc}
        if request.headers.get("Content-Type"):
            headers["Content-Type"] = request.headers["Content-Type"]
        payload = hashlib.sha256(content).hexdigest() if content else signing.EMPTY_SHA256
        request.headers.update(
            signing.sign_headers(
                self.creds.access_key,
                self.creds.secret_key,
                request.method or "GET",
                url.path,
                signing.canonical_query(url.query),
                headers,
                payload,
                utcnow(),
            )
        )
        self.sent += 1
        return request


HOSTILE = (None, None, None, "surrogates", "nesting")
"""How a generated JSON body is made hostile, if at all: every string given a lone surrogate,
or arrays nested past the limit. Either must be refused with the service's 400."""


def _with_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value + "\ud800"
    if isinstance(value, dict):
        return {_with_surrogates(k): _with_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_surrogates(each) for each in value]
    return value


def _surrogate_body(body: Any) -> Any:
    """`body` with a lone surrogate in every string, and in one more (it may have none)."""
    hostile = _with_surrogates(body)
    if isinstance(hostile, dict):
        return {**hostile, "\udc00": "\ud800"}
    if isinstance(hostile, list):
        return [*hostile, "\ud800"]
    return ["\udc00", hostile]


def _send(case: Any, how: str | None, server: LiveServer, session: requests.Session) -> Any:
    """Send the case, its JSON body made hostile (`HOSTILE`) when `how` says so and it has
    one; the response, and whether the body was made hostile."""
    request = case.as_transport_kwargs(base_url=server.url)
    body = request.get("json")
    if how is None or not isinstance(body, dict | list | str | int | float | bool):
        return session.request(**request, timeout=30), False
    if how == "surrogates":
        body = _surrogate_body(body)
    else:
        for _ in range(MAX_JSON_DEPTH + 1):
            body = [body]
    del request["json"]
    request["data"] = json.dumps(body).encode()  # `\ud800` escaped, as any JSON encoder does
    return session.request(**request, timeout=30), True


def _check(response: requests.Response, statuses: Counter[int]) -> None:
    """No 5xx; a refusal is the service's own error body."""
    statuses[response.status_code] += 1
    request = response.request
    where = f"{request.method} {request.url} body={request.body!r:.300}"
    assert response.status_code < 500, f"{where} -> {response.status_code} {response.text:.500}"
    if response.status_code >= 400:
        try:
            service_error(response)
        except (AssertionError, KeyError, TypeError, ValueError) as error:
            raise AssertionError(f"{where} -> {response.status_code} {response.text:.500}") from (
                error
            )


def _conforms(operation: Any, response: requests.Response) -> None:
    """The answer is the one the document gives for its status: the response model of a
    success, the service's error body of a refusal."""
    try:
        operation.validate_response(response)
    except BaseExceptionGroup as failures:
        request = response.request
        raise AssertionError(
            f"{request.method} {request.url} -> {response.status_code} {response.text:.300}: "
            f"{[str(failure) for failure in failures.exceptions]}"
        ) from failures


def _known_ids(server: LiveServer, owner: TenantCredentials, recipient: str) -> dict[str, str]:
    """Path parameters that name the owner's real resources, so that generated requests reach
    past the lookup: a disk in a vault, its backup shared with `recipient`, a policy."""
    clients = flows.tenant_clients(server.url, owner)
    disk = flows.create_disk(clients.evs, "fuzz-disk")
    vault = flows.disk_vault(clients.cbr, "fuzz-vault", 10, [disk])
    backup = flows.back_up(clients.cbr, vault.id, "fuzz-backup")
    base = f"/v3/{clients.project}"
    clients.data.request("POST", f"{base}/backups/{backup.id}/members", {"members": [recipient]})
    policy = {
        "name": "fuzz-policy",
        "operation_type": "backup",
        "operation_definition": {"retention_duration_days": 7},
        "trigger": {"properties": {"pattern": ["FREQ=DAILY;INTERVAL=1;BYHOUR=14;BYMINUTE=00"]}},
    }
    made = clients.data.request("POST", f"{base}/policies", {"policy": policy})["policy"]
    return {
        "project_id": clients.project,
        "volume_id": disk,
        "vault_id": vault.id,
        "backup_id": backup.id,
        "checkpoint_id": backup.checkpoint_id,
        "member_id": recipient,
        "policy_id": made["id"],
    }


def _fuzz_operation(
    operation: Any,
    server: LiveServer,
    session: requests.Session,
    known: dict[str, str],
    examples: int,
    statuses: Counter[int],
) -> None:
    """Requests fitting the schema in the owner's project, with its real ids or generated
    ones, and requests that do not fit it."""
    names = re.findall(r"{(\w+)}", operation.path)
    own_project = {"project_id": known["project_id"]} if "project_id" in names else None
    real = {name: known[name] for name in names if name in known} or None
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=own_project),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @hypothesis.settings(
        max_examples=examples * 2,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.generate, hypothesis.Phase.shrink],
    )
    @given(case=cases, how=st.sampled_from(HOSTILE))
    def run(case: Any, how: str | None) -> None:
        response, hostile = _send(case, how, server, session)
        _check(response, statuses)
        _conforms(operation, response)
        assert not hostile or response.status_code == 400, (how, response.text)

    run()


def _deletes_last(operation: Any) -> tuple[bool, str]:
    return operation.method.upper() == "DELETE", operation.path


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fuzz_every_operation(
    server: LiveServer,
    workers: WorkerPool,
    make_tenant: TenantFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    creds = make_tenant()
    known = _known_ids(server, creds, make_tenant().projects["region-1"])
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    session = requests.Session()
    session.auth = signer = SdkSignature(creds)
    started = time.monotonic()
    failures: list[str] = []
    operations = Counter[str]()
    statuses = Counter[int]()
    for operation in sorted((r.ok() for r in schema.get_all_operations()), key=_deletes_last):
        examples = COSTLY.get((operation.method.upper(), operation.path), EXAMPLES)
        operations[operation.method.upper()] += 1
        try:
            _fuzz_operation(operation, server, session, known, examples, statuses)
        except AssertionError as error:
            failures.append(f"{operation.method.upper()} {operation.path}: {error}")
    seconds = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nfuzz: {signer.sent} requests over {sum(operations.values())} operations "
            f"in {seconds:.0f} s; {len(failures)} failing; statuses {sorted(statuses.items())}"
        )
    assert not failures, "\n\n".join(failures)

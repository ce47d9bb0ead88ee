"""IAM through the official SDK and raw signed requests, on a real loopback server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import GlobalCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkiam.v3 import IamClient
from huaweicloudsdkiam.v3 import model as iam_model

from opencbr.core.context import Runtime
from opencbr.iam.models import Project
from tests.conftest import LiveServer, TenantFactory
from tests.e2e.sdk import global_client
from tests.e2e.signed import sign


def test_sdk_lists_projects_with_aksk(server: LiveServer, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    client = global_client(IamClient, server.url, creds)
    response = client.keystone_list_projects(iam_model.KeystoneListProjectsRequest(name="region-1"))
    assert [p.id for p in response.projects] == [creds.projects["region-1"]]
    assert response.projects[0].domain_id == creds.domain_id
    domains = client.keystone_list_auth_domains(iam_model.KeystoneListAuthDomainsRequest())
    assert [d.id for d in domains.domains] == [creds.domain_id]


def test_sdk_discovers_the_domain_without_being_told(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    client = (
        IamClient.new_builder()
        .with_credentials(GlobalCredentials(creds.access_key, creds.secret_key))
        .with_endpoints([server.url])
        .build()
    )
    projects = client.keystone_list_auth_projects(
        iam_model.KeystoneListAuthProjectsRequest()
    ).projects
    assert {p.id for p in projects} == set(creds.projects.values())


def test_token_auth_lists_projects(server: LiveServer, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": creds.user_name,
                        "password": creds.password,
                        "domain": {"name": creds.domain_name},
                    }
                },
            }
        }
    }
    issued = httpx.post(server.url + "/v3/auth/tokens", json=body)
    assert issued.status_code == 201
    token = issued.headers["x-subject-token"]
    listed = httpx.get(server.url + "/v3/projects", headers={"X-Auth-Token": token})
    assert listed.status_code == 200
    assert {p["id"] for p in listed.json()["projects"]} == set(creds.projects.values())
    refused = httpx.get(server.url + "/v3/projects", headers={"X-Auth-Token": token + "x"})
    assert refused.status_code == 401


def test_wrong_password_gets_no_token(server: LiveServer, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": creds.user_name, "password": "not-the-password"}},
            }
        }
    }
    response = httpx.post(server.url + "/v3/auth/tokens", json=body)
    assert response.status_code == 401
    assert "x-subject-token" not in response.headers


def _get(server: LiveServer, path: str, ak: str, sk: str, **kwargs: object) -> httpx.Response:
    query = str(kwargs.pop("query", ""))
    url = server.url + path + ("?" + query if query else "")
    return httpx.get(url, headers=sign("GET", url, ak, sk, query=query, **kwargs))  # type: ignore[arg-type]


def _assert_signature_refused(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0301"
    assert response.headers["x-request-id"]


def test_independent_signer_is_accepted(server: LiveServer, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    response = _get(
        server, "/v3/projects", creds.access_key, creds.secret_key, query="name=region-1"
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "case",
    ["wrong_sk", "unknown_ak", "stale_date", "future_date"],
)
def test_bad_credentials_and_dates_are_refused(
    server: LiveServer, make_tenant: TenantFactory, case: str
) -> None:
    creds = make_tenant()
    ak, sk, date = creds.access_key, creds.secret_key, datetime.now(UTC)
    if case == "wrong_sk":
        sk = sk[:-1] + ("A" if sk[-1] != "A" else "B")
    elif case == "unknown_ak":
        ak = "Z" * 20
    elif case == "stale_date":
        date -= timedelta(minutes=16)
    else:
        date += timedelta(minutes=16)
    _assert_signature_refused(_get(server, "/v3/projects", ak, sk, date=date))


def test_tampered_query_is_refused(server: LiveServer, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    signed_url = server.url + "/v3/projects?name=region-1"
    headers = sign("GET", signed_url, creds.access_key, creds.secret_key, query="name=region-1")
    _assert_signature_refused(httpx.get(server.url + "/v3/projects?name=region-2", headers=headers))


def test_list_valued_query_signs_in_sorted_order(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    canonical = "enabled=true&name=region-1&name=region-2"
    url = server.url + "/v3/projects?name=region-2&enabled=true&name=region-1"
    headers = sign("GET", url, creds.access_key, creds.secret_key, query=canonical)
    assert httpx.get(url, headers=headers).status_code == 200
    bad = sign("GET", url, creds.access_key, creds.secret_key, query="enabled=true&name=region-1")
    _assert_signature_refused(httpx.get(url, headers=bad))


def test_encoded_path_characters_are_canonicalised(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    url = server.url + "/v3/projects/a%20b"
    response = httpx.get(url, headers=sign("GET", url, creds.access_key, creds.secret_key))
    assert response.status_code == 403  # signature fine; no such project
    headers = sign("GET", server.url + "/v3/projects/a%2520b", creds.access_key, creds.secret_key)
    _assert_signature_refused(httpx.get(url, headers=headers))


def test_tampered_body_is_refused(server: LiveServer, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    url = server.url + "/v3.0/OS-AGENCY/agencies"
    signed = json.dumps(
        {
            "agency": {
                "name": "EVSAccessKMS",
                "domain_id": creds.domain_id,
                "trust_domain_name": "op_svc_evs",
            }
        }
    ).encode()
    headers = sign("POST", url, creds.access_key, creds.secret_key, body=signed)
    _assert_signature_refused(
        httpx.post(url, headers=headers, content=signed.replace(b"EVS", b"XYZ"))
    )
    listed = _get(server, "/v3.0/OS-AGENCY/agencies", creds.access_key, creds.secret_key)
    assert listed.json()["agencies"] == []
    assert httpx.post(url, headers=headers, content=signed).status_code == 201


def test_sdk_with_wrong_secret_gets_apigw_0301(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    client = (
        IamClient.new_builder()
        .with_credentials(
            GlobalCredentials(creds.access_key, "wrong" + creds.secret_key, creds.domain_id)
        )
        .with_endpoints([server.url])
        .build()
    )
    with pytest.raises(ClientRequestException) as refused:
        client.keystone_list_projects(iam_model.KeystoneListProjectsRequest())
    assert (refused.value.status_code, refused.value.error_code) == (401, "APIGW.0301")
    assert refused.value.request_id


def test_malformed_json_and_wrong_types_are_400(server: LiveServer) -> None:
    url = server.url + "/v3/auth/tokens"
    broken = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["error_code"] == "IAM.0011"  # IAM's family, not the backup service's
    wrong = httpx.post(url, json={"auth": {"identity": {"methods": "password", "password": 3}}})
    assert wrong.status_code == 400
    assert wrong.json()["error_code"] == "IAM.0011"


def test_oversized_body_is_413(server: LiveServer) -> None:
    too_big = b"{" + b" " * (12 * 1024 * 1024 + 10) + b"}"
    response = httpx.post(
        server.url + "/v3/auth/tokens",
        content=too_big,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error_code"] == "APIGW.0413"


def test_unknown_route_is_a_json_404(server: LiveServer) -> None:
    response = httpx.get(server.url + "/v3/nowhere")
    assert response.status_code == 404
    assert json.loads(response.text)["error_code"] == "APIGW.0101"


def test_a_tenant_cannot_read_another_tenants_project(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    alice, bob = make_tenant(), make_tenant()
    foreign = _get(
        server, f"/v3/projects/{alice.projects['region-1']}", bob.access_key, bob.secret_key
    )
    missing = _get(server, f"/v3/projects/{'0' * 32}", bob.access_key, bob.secret_key)
    assert foreign.status_code == missing.status_code == 403
    assert foreign.json()["error_code"] == missing.json()["error_code"]
    listed = _get(
        server, "/v3/projects", bob.access_key, bob.secret_key, query=f"domain_id={alice.domain_id}"
    )
    assert listed.json()["projects"] == []


def test_a_signed_request_in_a_project_not_the_callers_is_refused_alike(
    server: LiveServer, runtime: Runtime, make_tenant: TenantFactory
) -> None:
    """The project is looked up with the access key: another domain's project, a missing one
    and a disabled one of the caller's own are all refused in the same words (S14)."""
    alice, bob = make_tenant(), make_tenant()
    own = bob.projects["region-2"]
    assert _get(server, f"/v3/{own}/backups", bob.access_key, bob.secret_key).status_code == 200
    with runtime.database.unit_of_work() as session:
        project = session.get(Project, own)
        assert project is not None
        project.enabled = False
    refused = [
        _get(server, f"/v3/{project_id}/backups/{'1' * 32}", bob.access_key, bob.secret_key)
        for project_id in (alice.projects["region-1"], "0" * 32, own, "not-hex")
    ]
    assert {(r.status_code, r.json()["error_code"]) for r in refused} == {(403, "APIGW.0302")}


def test_sdk_creates_the_evs_kms_agency(server: LiveServer, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    client = global_client(IamClient, server.url, creds)
    body = iam_model.CreateAgencyRequestBody(
        agency=iam_model.CreateAgencyOption(
            name="EVSAccessKMS", domain_id=creds.domain_id, trust_domain_name="op_svc_evs"
        )
    )
    created = client.create_agency(iam_model.CreateAgencyRequest(body=body)).agency
    assert created.name == "EVSAccessKMS"
    with pytest.raises(ClientRequestException) as again:
        client.create_agency(iam_model.CreateAgencyRequest(body=body))
    assert again.value.status_code == 409
    listed = client.list_agencies(iam_model.ListAgenciesRequest(domain_id=creds.domain_id)).agencies
    assert [a.id for a in listed] == [created.id]

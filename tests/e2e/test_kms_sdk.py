"""KMS through the official SDK (`huaweicloudsdkkms` v2) on a real loopback server.

One server and three tenants per database (module scope) keep the grant matrix fast:
(owner, grantee domain, third domain) x (each key operation) x (enabled, disabled, pending).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkms.v2 import KmsClient
from huaweicloudsdkkms.v2 import model as m

from opencbr.api.runtime import build_runtime
from opencbr.core.context import Actor, Runtime
from opencbr.core.settings import Settings
from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials
from opencbr.kms import service as kms
from tests.conftest import DATABASES, LiveServer, unique
from tests.e2e.sdk import project_client

GRANTED = ["describe-key", "create-datakey", "decrypt-datakey"]
OPERATIONS = [
    "describe-key",
    "create-datakey",
    "create-datakey-without-plaintext",
    "encrypt-datakey",
    "decrypt-datakey",
]


@dataclass
class Tenant:
    creds: TenantCredentials
    user_id: str
    kms: Any

    @property
    def domain_id(self) -> str:
        return self.creds.domain_id

    @property
    def project_id(self) -> str:
        return self.creds.projects["region-1"]


@dataclass
class World:
    runtime: Runtime
    server: LiveServer
    owner: Tenant
    grantee: Tenant
    third: Tenant
    keys: dict[str, str]  # state name -> key id, each granted GRANTED to the grantee domain
    ciphers: dict[str, str]  # state name -> a data key cipher_text made while enabled

    def tenant(self, name: str) -> Tenant:
        return {"owner": self.owner, "grantee": self.grantee, "third": self.third}[name]

    def new_tenant(self) -> Tenant:
        with self.runtime.database.unit_of_work() as session:
            creds = iam.create_tenant(
                session,
                self.runtime.root_key,
                self.runtime.settings.regions,
                unique("k"),
                ["region-1", "region-2"],
            )
            user_id = iam.list_users(session, creds.domain_id)[0].id
        return Tenant(creds, user_id, project_client(KmsClient, self.server.url, creds))


def _settings(request: pytest.FixtureRequest, tmp: Any) -> Settings:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'kms.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    return Settings(data_dir=tmp / "data", database_url=url)


@pytest.fixture(scope="module", params=DATABASES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    runtime = build_runtime(_settings(request, tmp_path_factory.mktemp("kms")))
    with LiveServer(runtime) as server:
        stub = World(runtime, server, None, None, None, {}, {})  # type: ignore[arg-type]
        stub.owner, stub.grantee, stub.third = (stub.new_tenant() for _ in range(3))
        for state in ("enabled", "disabled", "pending"):
            key_id = create_key(stub.owner.kms)
            grant(stub.owner.kms, key_id, stub.grantee.domain_id, GRANTED, "domain")
            stub.keys[state] = key_id
            stub.ciphers[state] = stub.owner.kms.create_datakey_without_plaintext(
                m.CreateDatakeyWithoutPlaintextRequest(
                    body=m.CreateDatakeyRequestBody(key_id=key_id)
                )
            ).cipher_text
        stub.owner.kms.disable_key(_key_request(m.DisableKeyRequest, stub.keys["disabled"]))
        stub.owner.kms.delete_key(
            m.DeleteKeyRequest(
                body=m.ScheduleKeyDeletionRequestBody(key_id=stub.keys["pending"], pending_days="7")
            )
        )
        yield stub
    runtime.database.dispose()


def _key_request(request_class: Any, key_id: str) -> Any:
    return request_class(body=m.OperateKeyRequestBody(key_id=key_id))


def create_key(client: Any, alias: str | None = None) -> str:
    body = m.CreateKeyRequestBody(key_alias=alias or unique("key"), key_description="test key")
    key_id: str = client.create_key(m.CreateKeyRequest(body=body)).key_info.key_id
    return key_id


def grant(
    client: Any,
    key_id: str,
    principal: str,
    operations: list[str],
    kind: str = "domain",
    **extra: Any,
) -> str:
    body = m.CreateGrantRequestBody(
        key_id=key_id,
        grantee_principal=principal,
        grantee_principal_type=kind,
        operations=operations,
        **extra,
    )
    grant_id: str = client.create_grant(m.CreateGrantRequest(body=body)).grant_id
    return grant_id


def refused(call: Callable[[], Any]) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as caught:
        call()
    return caught.value


def _run(client: Any, operation: str, key_id: str, cipher: str) -> None:
    if operation == "describe-key":
        client.list_key_detail(_key_request(m.ListKeyDetailRequest, key_id))
    elif operation == "create-datakey":
        client.create_datakey(
            m.CreateDatakeyRequest(body=m.CreateDatakeyRequestBody(key_id=key_id))
        )
    elif operation == "create-datakey-without-plaintext":
        client.create_datakey_without_plaintext(
            m.CreateDatakeyWithoutPlaintextRequest(body=m.CreateDatakeyRequestBody(key_id=key_id))
        )
    elif operation == "encrypt-datakey":
        encrypt(client, key_id, os.urandom(32))
    else:
        decrypt(client, key_id, cipher, 32)


def encrypt(client: Any, key_id: str, data_key: bytes, **extra: Any) -> str:
    body = m.EncryptDatakeyRequestBody(
        key_id=key_id,
        **{
            "plain_text": (data_key + hashlib.sha256(data_key).digest()).hex(),
            "datakey_plain_length": str(len(data_key)),
            **extra,
        },
    )
    cipher: str = client.encrypt_datakey(m.EncryptDatakeyRequest(body=body)).cipher_text
    return cipher


def decrypt(client: Any, key_id: str, cipher: str, length: int, **extra: Any) -> bytes:
    body = m.DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text=cipher, datakey_cipher_length=str(length), **extra
    )
    answer = client.decrypt_datakey(m.DecryptDatakeyRequest(body=body))
    assert answer.datakey_dgst == hashlib.sha256(bytes.fromhex(answer.data_key)).hexdigest()
    return bytes.fromhex(answer.data_key)


def test_data_key_lengths_read_as_the_key_or_the_key_and_its_digest(world: World) -> None:
    """The SDK documents "64" for both lengths of a 32-byte key: the key and its SHA-256."""
    client, key_id = world.tenant("owner").kms, world.keys["enabled"]
    data_key = os.urandom(32)
    for plain_length in (32, 64):
        cipher = encrypt(client, key_id, data_key, datakey_plain_length=str(plain_length))
        for cipher_length in (32, 64):
            assert decrypt(client, key_id, cipher, cipher_length) == data_key
    error = refused(lambda: decrypt(client, key_id, cipher, 48))
    assert (error.status_code, error.error_code) == (400, "KMS.0206")


def _expected(actor: str, operation: str, state: str) -> str | None:
    """The error code the matrix cell must answer, or None for success."""
    if actor == "third":  # no grant at all: the key answers like a missing one (S14)
        return "KMS.0207"
    if actor == "grantee" and operation not in GRANTED:
        return "KMS.0306"
    if operation == "describe-key":
        return None
    return {"enabled": None, "disabled": "KMS.0209", "pending": "KMS.0210"}[state]


@pytest.mark.parametrize("state", ["enabled", "disabled", "pending"])
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("actor", ["owner", "grantee", "third"])
def test_grant_matrix(world: World, actor: str, operation: str, state: str) -> None:
    client = world.tenant(actor).kms
    key_id = world.keys[state]
    expected = _expected(actor, operation, state)
    if expected is None:
        _run(client, operation, key_id, world.ciphers[state])
        return
    error = refused(lambda: _run(client, operation, key_id, world.ciphers[state]))
    assert error.error_code == expected
    assert key_id in error.error_msg
    if expected == "KMS.0207":
        assert (error.status_code, error.error_msg) == (
            404,
            f"KMS key {key_id} not found in this region.",
        )
    if expected == "KMS.0306":
        assert error.status_code == 403
        assert f"account {world.tenant(actor).domain_id}" in error.error_msg
        assert operation in error.error_msg


def _actor(tenant: Tenant) -> Actor:
    return Actor(tenant.domain_id, tenant.user_id, tenant.project_id, "region-1")


def test_data_keys_round_trip(world: World) -> None:
    client = world.owner.kms
    key_id = world.keys["enabled"]
    made = client.create_datakey(
        m.CreateDatakeyRequest(body=m.CreateDatakeyRequestBody(key_id=key_id, datakey_length="512"))
    )
    assert len(bytes.fromhex(made.plain_text)) == 64
    assert decrypt(client, key_id, made.cipher_text, 64) == bytes.fromhex(made.plain_text)
    data_key = os.urandom(32)
    cipher = encrypt(client, key_id, data_key, additional_authenticated_data="disk-1")
    assert decrypt(client, key_id, cipher, 32, additional_authenticated_data="disk-1") == data_key
    assert decrypt(world.grantee.kms, key_id, cipher, 32, additional_authenticated_data="disk-1")
    wrong_aad = refused(lambda: decrypt(client, key_id, cipher, 32))
    assert wrong_aad.error_code == "KMS.0213"
    other_key = create_key(client)
    assert refused(lambda: decrypt(client, other_key, cipher, 32)).error_code == "KMS.0213"


def test_sdk_and_internal_interface_share_the_wrapped_format(world: World) -> None:
    key_id = world.keys["enabled"]
    with world.runtime.database.unit_of_work() as session:
        made = kms.generate_data_key(session, world.runtime.root_key, _actor(world.owner), key_id)
    assert decrypt(world.owner.kms, key_id, made.wrapped.hex(), 32) == made.plaintext


def test_bad_input_answers_kms_codes(world: World) -> None:
    client = world.owner.kms
    cases: list[tuple[Callable[[], Any], str, int]] = [
        (lambda: _run(client, "describe-key", "not-a-uuid", ""), "KMS.0205", 400),
        (lambda: _run(client, "describe-key", "", ""), "KMS.0204", 400),
        (
            lambda: _run(client, "describe-key", "00000000-0000-4000-8000-000000000000", ""),
            "KMS.0207",
            404,
        ),
        (lambda: create_key(client, "bad alias!"), "KMS.0206", 400),
        (lambda: create_key(client, "ebs/default"), "KMS.0206", 400),
        (
            lambda: grant(client, world.keys["enabled"], world.third.domain_id, ["create-grant"]),
            "KMS.2401",
            400,
        ),
        (
            lambda: grant(client, world.keys["enabled"], world.third.domain_id, ["fly"]),
            "KMS.2401",
            400,
        ),
        (
            lambda: grant(client, world.keys["enabled"], "f" * 32, ["describe-key"]),
            "KMS.2403",
            400,
        ),
        (
            lambda: client.delete_key(
                m.DeleteKeyRequest(
                    body=m.ScheduleKeyDeletionRequestBody(
                        key_id=world.keys["enabled"], pending_days="6"
                    )
                )
            ),
            "KMS.0206",
            400,
        ),
    ]
    before = _grant_count(world, world.keys["enabled"])
    for call, code, status in cases:
        error = refused(call)
        assert (error.error_code, error.status_code) == (code, status), error.error_msg
    assert _grant_count(world, world.keys["enabled"]) == before


def _grant_count(world: World, key_id: str) -> int:
    body = m.ListGrantsRequestBody(key_id=key_id)
    total: int = world.owner.kms.list_grants(m.ListGrantsRequest(body=body)).total
    return total


def test_alias_is_unique_per_project(world: World) -> None:
    alias = unique("dup")
    create_key(world.owner.kms, alias)
    assert refused(lambda: create_key(world.owner.kms, alias)).error_code == "KMS.0212"
    create_key(world.grantee.kms, alias)


def test_default_key_cannot_be_granted_disabled_or_deleted(world: World) -> None:
    with world.runtime.database.unit_of_work() as session:
        first = kms.default_disk_key(session, world.runtime.root_key, _actor(world.owner)).id
    with world.runtime.database.unit_of_work() as session:
        again = kms.default_disk_key(session, world.runtime.root_key, _actor(world.owner)).id
    assert first == again
    client = world.owner.kms
    info = client.list_key_detail(_key_request(m.ListKeyDetailRequest, first)).key_info
    assert (info.key_alias, info.default_key_flag, info.key_state) == ("evs/default", "1", "2")
    error = refused(lambda: grant(client, first, world.grantee.domain_id, ["describe-key"]))
    assert error.error_code == "KMS.0211"
    error = refused(lambda: client.disable_key(_key_request(m.DisableKeyRequest, first)))
    assert error.error_code == "KMS.0211"


def test_key_lifecycle_and_listing(world: World) -> None:
    client = world.owner.kms
    key_id = create_key(client)
    client.disable_key(_key_request(m.DisableKeyRequest, key_id))
    assert refused(lambda: client.disable_key(_key_request(m.DisableKeyRequest, key_id)))
    state = client.enable_key(_key_request(m.EnableKeyRequest, key_id)).key_info.key_state
    assert state == "2"
    body = m.ScheduleKeyDeletionRequestBody(key_id=key_id, pending_days="1096")
    assert client.delete_key(m.DeleteKeyRequest(body=body)).key_state == "4"
    info = client.list_key_detail(_key_request(m.ListKeyDetailRequest, key_id)).key_info
    assert info.scheduled_deletion_date
    error = refused(lambda: client.enable_key(_key_request(m.EnableKeyRequest, key_id)))
    assert error.error_code == "KMS.0210"
    cancelled = client.cancel_key_deletion(_key_request(m.CancelKeyDeletionRequest, key_id))
    assert cancelled.key_state == "3"
    listed = client.list_keys(m.ListKeysRequest(body=m.ListKeysRequestBody(key_state="3")))
    assert key_id in listed.keys
    assert all(d.key_state == "3" for d in listed.key_details)
    first = client.list_keys(m.ListKeysRequest(body=m.ListKeysRequestBody(limit="1")))
    assert (len(first.keys), first.truncated, first.next_marker) == (1, "true", "1")
    theirs = world.grantee.kms.list_keys(m.ListKeysRequest(body=m.ListKeysRequestBody()))
    assert key_id not in theirs.keys
    error = refused(lambda: world.grantee.kms.enable_key(_key_request(m.EnableKeyRequest, key_id)))
    assert (error.status_code, error.error_code) == (404, "KMS.0207")  # holds no grant on it


def test_revoked_and_retired_grants_stop_at_once(world: World) -> None:
    owner, grantee = world.owner.kms, world.grantee.kms
    key_id = create_key(owner)
    describe = _key_request(m.ListKeyDetailRequest, key_id)
    revocable = grant(owner, key_id, world.grantee.domain_id, ["describe-key"])
    grantee.list_key_detail(describe)
    revoke = m.RevokeGrantRequestBody(key_id=key_id, grant_id=revocable)
    error = refused(lambda: grantee.cancel_grant(m.CancelGrantRequest(body=revoke)))
    assert error.error_code == "KMS.0307"
    owner.cancel_grant(m.CancelGrantRequest(body=revoke))
    assert refused(lambda: grantee.list_key_detail(describe)).error_code == "KMS.0207"
    retirable = grant(
        owner, key_id, world.grantee.user_id, ["describe-key", "retire-grant"], kind="user"
    )
    grantee.list_key_detail(describe)
    listed = grantee.list_retirable_grants(
        m.ListRetirableGrantsRequest(body=m.ListRetirableGrantsRequestBody())
    )
    assert retirable in [g.grant_id for g in listed.grants]
    retire = m.RevokeGrantRequestBody(key_id=key_id, grant_id=retirable)
    error = refused(
        lambda: world.third.kms.cancel_self_grant(m.CancelSelfGrantRequest(body=retire))
    )
    assert error.error_code == "KMS.0207"  # third sees neither the key nor may retire
    grantee.cancel_self_grant(m.CancelSelfGrantRequest(body=retire))
    assert refused(lambda: grantee.list_key_detail(describe)).error_code == "KMS.0207"
    error = refused(lambda: owner.cancel_grant(m.CancelGrantRequest(body=retire)))
    assert error.error_code == "KMS.2502"


def test_grantee_regrants_only_what_it_holds(world: World) -> None:
    owner, grantee = world.owner.kms, world.grantee.kms
    key_id = create_key(owner)
    grant(owner, key_id, world.grantee.domain_id, ["describe-key", "create-grant"])
    grant(grantee, key_id, world.third.domain_id, ["describe-key"])
    world.third.kms.list_key_detail(_key_request(m.ListKeyDetailRequest, key_id))
    error = refused(lambda: grant(grantee, key_id, world.third.domain_id, ["decrypt-datakey"]))
    assert error.error_code == "KMS.2401"
    assert refused(lambda: grant(world.third.kms, key_id, world.owner.domain_id, ["describe-key"]))


def test_at_most_100_grants_per_key(world: World) -> None:
    key_id = create_key(world.owner.kms)
    for _ in range(100):
        grant(world.owner.kms, key_id, world.grantee.domain_id, ["describe-key"])
    error = refused(lambda: grant(world.owner.kms, key_id, world.third.domain_id, ["describe-key"]))
    assert error.error_code == "KMS.2404"
    page = world.owner.kms.list_grants(
        m.ListGrantsRequest(body=m.ListGrantsRequestBody(key_id=key_id, limit="30", marker="90"))
    )
    assert (len(page.grants), page.total, page.truncated) == (10, 100, "false")


def test_keys_are_regional(world: World) -> None:
    key_id = world.keys["enabled"]
    region_2 = project_client(KmsClient, world.server.url, world.owner.creds, "region-2")
    error = refused(lambda: region_2.list_key_detail(_key_request(m.ListKeyDetailRequest, key_id)))
    assert error.error_code == "KMS.0207"


def _cli(world: World, tenant: Tenant, *args: str) -> Any:
    from typer.testing import CliRunner

    from opencbr.cli.main import app

    env = {
        "OPENCBR_ENDPOINT": world.server.url,
        "OPENCBR_ACCESS_KEY": tenant.creds.access_key,
        "OPENCBR_SECRET_KEY": tenant.creds.secret_key,
        "OPENCBR_PROJECT_ID": tenant.project_id,
    }
    return CliRunner().invoke(app, list(args), env=env)


def test_cli_keys_grants_and_agency(world: World) -> None:
    import json

    owner = world.new_tenant()
    created = _cli(world, owner, "kms", "key", "create", "cli-key", "--json")
    assert created.exit_code == 0, created.output
    key_id = json.loads(created.output)["key_id"]
    listed = _cli(world, owner, "kms", "key", "list")
    assert "cli-key" in listed.output
    assert "enabled" in listed.output
    assert _cli(world, owner, "kms", "key", "disable", key_id).exit_code == 0
    shown = json.loads(_cli(world, owner, "kms", "key", "show", key_id, "--json").output)
    assert shown["key_state"] == "3"
    assert _cli(world, owner, "kms", "key", "enable", key_id).exit_code == 0
    made = _cli(world, owner, "kms", "grant", "create", key_id, world.grantee.domain_id,
                "-o", "describe-key", "-o", "decrypt-datakey", "--json")  # fmt: skip
    grant_id = json.loads(made.output)["grant_id"]
    listed_grants = _cli(world, owner, "kms", "grant", "list", key_id, "--json").output
    assert [g["grant_id"] for g in json.loads(listed_grants)] == [grant_id]
    assert "Grants" in _cli(world, owner, "kms", "grant", "list", key_id).output
    assert _cli(world, owner, "kms", "grant", "revoke", key_id, grant_id).exit_code == 0
    bad = _cli(world, owner, "kms", "grant", "create", key_id, world.grantee.domain_id,
               "-o", "create-grant")  # fmt: skip
    assert bad.exit_code != 0
    assert "KMS.2401" in bad.output
    deleted = _cli(world, owner, "kms", "key", "delete", key_id, "--pending-days", "30")
    assert "pending deletion" in deleted.output
    assert "disabled" in _cli(world, owner, "kms", "key", "cancel-delete", key_id).output
    assert "not enabled" in _cli(world, owner, "whoami").output
    assert "not enabled" in _cli(world, owner, "kms", "agency", "show").output
    assert _cli(world, owner, "kms", "agency", "enable").exit_code == 0
    assert _cli(world, owner, "kms", "agency", "enable").exit_code == 0  # idempotent
    assert "EVSAccessKMS agency (encrypted disks): enabled" in _cli(world, owner, "whoami").output
    status = json.loads(_cli(world, owner, "kms", "agency", "show", "--json").output)
    assert status["enabled"] is True


def test_malformed_bodies_answer_in_the_kms_envelope(world: World) -> None:
    import httpx

    from tests.e2e.signed import sign

    creds = world.owner.creds
    url = f"{world.server.url}/v1.0/{world.owner.project_id}/kms/create-grant"
    for body in (b'{"key_id": "x", "operations": "describe-key"}', b"not json"):
        headers = sign("POST", url, creds.access_key, creds.secret_key, body)
        answer = httpx.post(url, content=body, headers=headers)
        assert answer.status_code == 400
        assert answer.json()["error"]["error_code"] == "KMS.0206"


def _post(world: World, operation: str, body: dict[str, Any], tenant: Tenant | None = None) -> Any:
    """A raw signed call (as the owner unless told): the body goes on the wire exactly as
    written."""
    import json

    import httpx

    from tests.e2e.signed import sign

    tenant = tenant or world.owner
    creds = tenant.creds
    url = f"{world.server.url}/v1.0/{tenant.project_id}/kms/{operation}"
    content = json.dumps(body).encode()
    return httpx.post(
        url, content=content, headers=sign("POST", url, creds.access_key, creds.secret_key, content)
    )


def _owner_keys(world: World) -> dict[str, str]:
    """key id -> state of every key of the owner's project."""
    body = m.ListKeysRequestBody(limit="1000")
    details = world.owner.kms.list_keys(m.ListKeysRequest(body=body)).key_details
    return {d.key_id: d.key_state for d in details}


def _assert_refused(answer: Any, code: str, *words: str) -> None:
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["error_code"] == code, error
    for word in words:
        assert word in error["error_msg"]


@pytest.mark.parametrize("text", ["²", "٣٠", "\uff13\uff10", "30\n"])
def test_unicode_digits_answer_kms_0206_and_change_nothing(world: World, text: str) -> None:
    key_id = create_key(world.owner.kms)
    before, grants_before = _owner_keys(world), _grant_count(world, key_id)
    cases = [
        ("list-keys", {"limit": text}, "limit"),
        ("list-keys", {"marker": text}, "marker"),
        ("list-grants", {"key_id": key_id, "limit": text}, "limit"),
        ("list-retirable-grants", {"marker": text}, "marker"),
        ("schedule-key-deletion", {"key_id": key_id, "pending_days": text}, "pending_days"),
        ("create-datakey", {"key_id": key_id, "datakey_length": text}, "datakey_length"),
        (
            "encrypt-datakey",
            {"key_id": key_id, "plain_text": "00" * 30, "datakey_plain_length": text},
            "datakey_plain_length",
        ),
        (
            "decrypt-datakey",
            {"key_id": key_id, "cipher_text": "00" * 61, "datakey_cipher_length": text},
            "datakey_cipher_length",
        ),
    ]
    for operation, body, field in cases:
        _assert_refused(_post(world, operation, body), "KMS.0206", field)
    assert _owner_keys(world) == before
    assert before[key_id] == "2"
    assert _grant_count(world, key_id) == grants_before


def test_trailing_newlines_are_not_valid_ids_or_aliases(world: World) -> None:
    key_id = create_key(world.owner.kms)
    grant_id = grant(world.owner.kms, key_id, world.grantee.domain_id, ["describe-key"])
    before, grants_before = _owner_keys(world), _grant_count(world, key_id)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("create-key", {"key_alias": unique("k") + "\n"}, "KMS.0206"),
        ("describe-key", {"key_id": key_id + "\n"}, "KMS.0205"),
        ("disable-key", {"key_id": key_id + "\n"}, "KMS.0205"),
        (
            "create-grant",
            {
                "key_id": key_id,
                "grantee_principal": world.third.domain_id + "\n",
                "grantee_principal_type": "domain",
                "operations": ["describe-key"],
            },
            "KMS.0206",
        ),
        ("revoke-grant", {"key_id": key_id, "grant_id": grant_id + "\n"}, "KMS.2501"),
        ("retire-grant", {"key_id": key_id, "grant_id": grant_id + "\n"}, "KMS.2501"),
    ]
    for operation, body, code in cases:
        _assert_refused(_post(world, operation, body), code)
    assert _owner_keys(world) == before
    assert _grant_count(world, key_id) == grants_before


@pytest.mark.parametrize(
    "operation",
    [
        "describe-key",
        "enable-key",
        "disable-key",
        "schedule-key-deletion",
        "cancel-key-deletion",
        "create-datakey",
        "create-datakey-without-plaintext",
        "encrypt-datakey",
        "decrypt-datakey",
        "create-grant",
        "list-grants",
        "revoke-grant",
        "retire-grant",
    ],
)
def test_an_empty_body_names_the_missing_key_id(world: World, operation: str) -> None:
    before = _owner_keys(world)
    _assert_refused(_post(world, operation, {}), "KMS.0204", "key_id")
    assert _owner_keys(world) == before


# Every KMS route that takes a key id, with a body that is valid but for the key.
_KEY_ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("describe-key", {}),
    ("enable-key", {}),
    ("disable-key", {}),
    ("schedule-key-deletion", {"pending_days": "7"}),
    ("cancel-key-deletion", {}),
    ("create-datakey", {"datakey_length": "256"}),
    ("create-datakey-without-plaintext", {"datakey_length": "256"}),
    ("encrypt-datakey", {"plain_text": "00" * 64, "datakey_plain_length": "32"}),
    ("decrypt-datakey", {"cipher_text": "00" * 124, "datakey_cipher_length": "32"}),
    ("create-grant", {"grantee_principal": "0" * 32, "operations": ["describe-key"]}),
    ("list-grants", {}),
    ("revoke-grant", {"grant_id": "0" * 64}),
    ("retire-grant", {"grant_id": "0" * 64}),
]


def _answer(world: World, tenant: Tenant, route: str, key_id: str, extra: dict[str, Any]) -> Any:
    answer = _post(world, route, {"key_id": key_id, **extra}, tenant)
    return answer.status_code, answer.text.replace(key_id, "<key>")


@pytest.mark.parametrize(("route", "extra"), _KEY_ROUTES, ids=[r for r, _ in _KEY_ROUTES])
def test_another_accounts_key_answers_like_a_missing_one(
    world: World, route: str, extra: dict[str, Any]
) -> None:
    """No key-existence oracle: without a grant, the owner's key answers exactly as a random
    id does, on every route, and nothing changes."""
    key_id, missing = world.keys["enabled"], "00000000-0000-4000-8000-000000000000"
    before, grants_before = _owner_keys(world), _grant_count(world, key_id)
    theirs = _answer(world, world.third, route, key_id, extra)
    assert theirs == _answer(world, world.third, route, missing, extra)
    assert theirs[0] == 404
    assert (_owner_keys(world), _grant_count(world, key_id)) == (before, grants_before)


def test_a_grantee_sees_the_key_and_only_its_granted_operations_work(world: World) -> None:
    key_id = world.keys["enabled"]
    status, text = _answer(world, world.grantee, "enable-key", key_id, {})
    assert (status, "KMS.0306" in text, "enable-key" in text) == (403, True, True)
    status, _ = _answer(world, world.grantee, "describe-key", key_id, {})
    assert status == 200


def test_an_encrypted_disk_under_another_accounts_key_answers_like_a_missing_key(
    world: World,
) -> None:
    from huaweicloudsdkevs.v2 import EvsClient
    from huaweicloudsdkevs.v2 import model as evs

    from opencbr.iam.agencies import EVS_KMS_AGENCY, create_agency

    third = world.third
    with world.runtime.database.unit_of_work() as session:
        create_agency(session, third.domain_id, EVS_KMS_AGENCY, "op_svc_evs")
    client = project_client(EvsClient, world.server.url, third.creds)

    def create(key_id: str) -> tuple[int, str, str]:
        metadata = {"__system__encrypted": "1", "__system__cmkid": key_id}
        option = evs.CreateVolumeOption(
            availability_zone="az1", volume_type="SAS", size=1, name="x", metadata=metadata
        )
        error = refused(
            lambda: client.create_volume(
                evs.CreateVolumeRequest(body=evs.CreateVolumeRequestBody(volume=option))
            )
        )
        return error.status_code, error.error_code, error.error_msg.replace(key_id, "<key>")

    missing = create("00000000-0000-4000-8000-000000000000")
    assert create(world.keys["enabled"]) == missing
    assert missing[:2] == (404, "KMS.0207")

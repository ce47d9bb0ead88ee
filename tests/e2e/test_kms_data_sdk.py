"""KMS `encrypt-data` / `decrypt-data`, key alias, description and tags through the SDK: the
cipher text names its key and opens only under it (and the same AAD); a grantee needs the
matching operation granted; only the owner renames, describes or tags a key; an outsider
learns nothing; `list-keys` works with no body at all."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkms.v2 import KmsClient
from huaweicloudsdkkms.v2 import model as m

from tests.conftest import LiveServer, TenantFactory
from tests.e2e.sdk import project_client
from tests.e2e.test_kms_sdk import create_key, grant


def _error(call: Any) -> tuple[int, str]:
    with pytest.raises(ClientRequestException) as caught:
        call()
    return caught.value.status_code, caught.value.error_code


def _encrypt(client: Any, key_id: str, text: str, aad: str | None = None) -> str:
    body = m.EncryptDataRequestBody(
        key_id=key_id, plain_text=text, additional_authenticated_data=aad
    )
    cipher: str = client.encrypt_data(m.EncryptDataRequest(body=body)).cipher_text
    return cipher


def _decrypt(client: Any, cipher: str, key_id: str | None = None, aad: str | None = None) -> Any:
    body = m.DecryptDataRequestBody(
        cipher_text=cipher, key_id=key_id, additional_authenticated_data=aad
    )
    return client.decrypt_data(m.DecryptDataRequest(body=body))


def test_data_opens_only_under_its_key_and_aad(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    client = project_client(KmsClient, server.url, make_tenant())
    key_id, other_key = create_key(client), create_key(client)
    cipher = _encrypt(client, key_id, "héllo", aad="ctx")
    opened = _decrypt(client, cipher, aad="ctx")
    assert (opened.key_id, opened.plain_text) == (key_id, "héllo")
    assert base64.b64decode(opened.plain_text_base64) == "héllo".encode()

    assert _error(lambda: _decrypt(client, cipher)) == (400, "KMS.0213")  # no AAD
    assert _error(lambda: _decrypt(client, cipher, other_key, "ctx")) == (400, "KMS.0213")
    raw = bytearray(base64.b64decode(cipher))
    raw[-1] ^= 1
    altered = base64.b64encode(bytes(raw)).decode()
    assert _error(lambda: _decrypt(client, altered, aad="ctx")) == (400, "KMS.0213")
    assert _error(lambda: _decrypt(client, "not base64!")) == (400, "KMS.0206")
    assert _error(lambda: _encrypt(client, key_id, "x" * 4097)) == (400, "KMS.0206")
    assert key_id in client.list_keys(m.ListKeysRequest()).keys


def test_a_grantee_needs_each_operation_and_an_outsider_learns_nothing(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    owner_creds, grantee_creds, outsider_creds = make_tenant(), make_tenant(), make_tenant()
    owner = project_client(KmsClient, server.url, owner_creds)
    grantee = project_client(KmsClient, server.url, grantee_creds)
    outsider = project_client(KmsClient, server.url, outsider_creds)
    key_id = create_key(owner)
    grant(owner, key_id, grantee_creds.domain_id, ["encrypt-data", "describe-key"])
    cipher = _encrypt(grantee, key_id, "from the grantee")
    assert _error(lambda: _decrypt(grantee, cipher)) == (403, "KMS.0306")
    assert _decrypt(owner, cipher).plain_text == "from the grantee"
    # Without a grant another account's key answers exactly as a key that does not exist.
    assert _error(lambda: _decrypt(outsider, cipher)) == (404, "KMS.0207")
    assert _error(lambda: _encrypt(outsider, key_id, "x")) == (404, "KMS.0207")
    assert _error(lambda: _encrypt(outsider, str(uuid.uuid4()), "x")) == (404, "KMS.0207")
    owner.disable_key(m.DisableKeyRequest(body=m.OperateKeyRequestBody(key_id=key_id)))
    assert _error(lambda: _decrypt(owner, cipher)) == (400, "KMS.0209")


def test_the_owner_renames_and_describes_its_key(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    owner_creds, grantee_creds = make_tenant(), make_tenant()
    owner = project_client(KmsClient, server.url, owner_creds)
    grantee = project_client(KmsClient, server.url, grantee_creds)
    key_id, other = create_key(owner, "first"), create_key(owner, "second")
    grant(owner, key_id, grantee_creds.domain_id, ["describe-key"])

    def rename(client: Any, key: str, alias: str) -> Any:
        body = m.UpdateKeyAliasRequestBody(key_id=key, key_alias=alias)
        return client.update_key_alias(m.UpdateKeyAliasRequest(body=body)).key_info

    assert rename(owner, key_id, "renamed").key_alias == "renamed"
    assert _error(lambda: rename(owner, other, "renamed"))[0] == 400  # taken
    assert _error(lambda: rename(owner, key_id, "bad alias!")) == (400, "KMS.0206")
    assert _error(lambda: rename(grantee, key_id, "mine"))[1] == "KMS.0306"
    body = m.UpdateKeyDescriptionRequestBody(key_id=key_id, key_description="d" * 256)
    request = m.UpdateKeyDescriptionRequest(body=body)
    assert _error(lambda: owner.update_key_description(request)) == (400, "KMS.0206")
    body = m.UpdateKeyDescriptionRequestBody(key_id=key_id, key_description="for backups")
    owner.update_key_description(m.UpdateKeyDescriptionRequest(body=body))
    shown = owner.list_key_detail(
        m.ListKeyDetailRequest(body=m.OperateKeyRequestBody(key_id=key_id))
    ).key_info
    assert (shown.key_alias, shown.key_description) == ("renamed", "for backups")


def test_key_tags_are_the_owners(server: LiveServer, make_tenant: TenantFactory) -> None:
    owner_creds, grantee_creds = make_tenant(), make_tenant()
    owner = project_client(KmsClient, server.url, owner_creds)
    grantee = project_client(KmsClient, server.url, grantee_creds)
    key_id = create_key(owner)
    grant(owner, key_id, grantee_creds.domain_id, ["describe-key"])

    def tag(client: Any, **tags: str) -> None:
        body = m.BatchCreateKmsTagsRequestBody(
            action="create", tags=[m.TagItem(key=k, value=v) for k, v in tags.items()]
        )
        client.batch_create_kms_tags(m.BatchCreateKmsTagsRequest(key_id=key_id, body=body))

    tag(owner, **{f"k{i}": "v" for i in range(10)})
    assert _error(lambda: tag(owner, k10="v")) == (400, "KMS.0206")
    assert _error(lambda: tag(grantee, a="b"))[1] == "KMS.0306"
    show = m.ShowKmsTagsRequest(key_id=key_id)
    assert _error(lambda: grantee.show_kms_tags(show))[1] == "KMS.0306"
    assert owner.show_kms_tags(show).exist_tags_num == 10
    missing = m.DeleteTagRequest(key_id=key_id, key="nope")
    assert _error(lambda: owner.delete_tag(missing)) == (404, "KMS.0404")
    assert grantee.list_kms_tags(m.ListKmsTagsRequest()).tags == []
    count = m.ListKmsByTagsRequestBody(action="count", tags=[m.Tag(key="k1", values=["v"])])
    request = m.ListKmsByTagsRequest(resource_instances="resource_instances", body=count)
    assert owner.list_kms_by_tags(request).total_count == 1
    assert grantee.list_kms_by_tags(request).total_count == 0


def test_aliases_are_the_owners_and_unique(server: LiveServer, make_tenant: TenantFactory) -> None:
    owner_creds, grantee_creds = make_tenant(), make_tenant()
    owner = project_client(KmsClient, server.url, owner_creds)
    grantee = project_client(KmsClient, server.url, grantee_creds)
    key_id, other = create_key(owner), create_key(owner)
    grant(owner, key_id, grantee_creds.domain_id, ["describe-key"])

    def alias(client: Any, key: str, name: str) -> Any:
        body = m.CreateAliasRequestBody(key_id=key, alias=name)
        return client.create_alias(m.CreateAliasRequest(body=body))

    made = alias(owner, key_id, "alias/backups")
    assert made.alias_urn.endswith(":alias/backups")
    assert _error(lambda: alias(owner, other, "alias/backups"))[0] == 400  # taken
    assert _error(lambda: alias(owner, key_id, "backups")) == (400, "KMS.0206")
    assert _error(lambda: alias(grantee, key_id, "alias/mine"))[1] == "KMS.0306"
    listed = grantee.list_aliases(m.ListAliasesRequest()).raw_content.decode()
    assert "alias/backups" not in listed
    wrong_key = m.DeleteAliasRequestBody(key_id=other, aliases=["alias/backups"])
    request = m.DeleteAliasRequest(body=wrong_key)
    assert _error(lambda: owner.delete_alias(request)) == (404, "KMS.0405")
    move = m.AssociateAliasRequestBody(alias="alias/backups", target_key_id=other)
    assert _error(lambda: grantee.associate_alias(m.AssociateAliasRequest(body=move)))[0] == 404
    assert owner.associate_alias(m.AssociateAliasRequest(body=move)).key_id == other


def test_rotation_gives_new_material_and_keeps_the_old_to_decrypt(
    server: LiveServer, make_tenant: TenantFactory
) -> None:
    owner_creds, grantee_creds = make_tenant(), make_tenant()
    owner = project_client(KmsClient, server.url, owner_creds)
    grantee = project_client(KmsClient, server.url, grantee_creds)
    key_id = create_key(owner)
    grant(owner, key_id, grantee_creds.domain_id, ["describe-key", "decrypt-datakey"])
    key = m.OperateKeyRequestBody(key_id=key_id)

    def data_key() -> tuple[str, str]:
        made = owner.create_datakey(
            m.CreateDatakeyRequest(body=m.CreateDatakeyRequestBody(key_id=key_id))
        )
        return made.plain_text, made.cipher_text

    def unwrap(client: Any, cipher: str) -> str:
        body = m.DecryptDatakeyRequestBody(
            key_id=key_id, cipher_text=cipher, datakey_cipher_length="32"
        )
        plain: str = client.decrypt_datakey(m.DecryptDatakeyRequest(body=body)).data_key
        return plain

    before_plain, before_cipher = data_key()
    sealed = _encrypt(owner, key_id, "before")
    owner.rotate_on_demand(m.RotateOnDemandRequest(body=key))
    owner.rotate_on_demand(m.RotateOnDemandRequest(body=key))
    after_plain, after_cipher = data_key()
    assert unwrap(owner, before_cipher) == before_plain  # retired material still decrypts
    assert unwrap(grantee, before_cipher) == before_plain
    assert unwrap(owner, after_cipher) == after_plain
    assert _decrypt(owner, sealed).plain_text == "before"
    status = owner.show_key_rotation_status(m.ShowKeyRotationStatusRequest(body=key))
    assert status.number_of_rotations == 2
    assert [k.state for k in status.key_materials] == [3, 3, 2]

    assert _error(lambda: grantee.rotate_on_demand(m.RotateOnDemandRequest(body=key)))[1] == (
        "KMS.0306"
    )
    bad = m.UpdateKeyRotationIntervalRequestBody(key_id=key_id, rotation_interval=7)
    request = m.UpdateKeyRotationIntervalRequest(body=bad)
    assert _error(lambda: owner.update_key_rotation_interval(request)) == (400, "KMS.0206")
    owner.disable_key(m.DisableKeyRequest(body=key))
    assert _error(lambda: owner.rotate_on_demand(m.RotateOnDemandRequest(body=key))) == (
        400,
        "KMS.0209",
    )

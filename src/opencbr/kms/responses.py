"""The bodies of the KMS routes as they answer (see `core.wire`): the vendor's v1.0 fields,
strings where the vendor sends strings (dates in epoch milliseconds, flags as "0"/"1")."""

from __future__ import annotations

from opencbr.core.wire import Wire

__all__ = [
    "AliasList",
    "AliasOut",
    "CreatedKey",
    "DataKey",
    "DataKeyCipher",
    "DecryptedData",
    "DecryptedDataKey",
    "EncryptedData",
    "EncryptedDataKey",
    "GrantCreated",
    "GrantList",
    "KeyDescription",
    "KeyDetail",
    "KeyIdOnly",
    "KeyList",
    "KeyNamed",
    "KeyRotation",
    "KeyStatus",
    "KeyStatusInfo",
    "KeyTags",
    "KeysByTags",
    "ProjectKeyTags",
]


class KeyInfo(Wire):
    key_id: str
    domain_id: str
    key_alias: str
    realm: str
    key_spec: str
    key_usage: str
    key_description: str
    creation_date: str
    scheduled_deletion_date: str
    key_state: str
    default_key_flag: str
    key_type: str
    expiration_time: str
    origin: str
    key_rotation_enabled: str
    sys_enterprise_project_id: str
    keystore_id: str
    keystore_type: str
    multi_region_key_type: str
    pending_days: str


class KeyDetail(Wire):
    key_info: KeyInfo


class CreatedKeyInfo(Wire):
    key_id: str
    domain_id: str
    region_id: str


class CreatedKey(Wire):
    key_info: CreatedKeyInfo


class KeyList(Wire):
    keys: list[str]
    key_details: list[KeyInfo]
    next_marker: str
    truncated: str
    total: int


class KeyStatus(Wire):
    key_id: str
    key_state: str


class KeyStatusInfo(Wire):
    key_info: KeyStatus


class KeyIdOnly(Wire):
    key_id: str


class KeyAliasInfo(Wire):
    key_id: str
    key_alias: str


class KeyNamed(Wire):
    key_info: KeyAliasInfo


class KeyDescriptionInfo(Wire):
    key_id: str
    key_description: str


class KeyDescription(Wire):
    key_info: KeyDescriptionInfo


class DataKey(Wire):
    key_id: str
    plain_text: str
    cipher_text: str


class DataKeyCipher(Wire):
    key_id: str
    cipher_text: str


class EncryptedDataKey(Wire):
    key_id: str
    cipher_text: str
    datakey_length: str


class DecryptedDataKey(Wire):
    data_key: str
    datakey_length: str
    datakey_dgst: str


class EncryptedData(Wire):
    key_id: str
    cipher_text: str


class DecryptedData(Wire):
    key_id: str
    plain_text: str
    plain_text_base64: str


class GrantCreated(Wire):
    grant_id: str


class GrantOut(Wire):
    key_id: str
    grant_id: str
    grantee_principal: str
    grantee_principal_type: str
    operations: list[str]
    issuing_principal: str
    retiring_principal: str
    name: str
    creation_date: str


class GrantList(Wire):
    grants: list[GrantOut]
    next_marker: str
    truncated: str
    total: int


class AliasOut(Wire):
    domain_id: str
    key_id: str
    alias: str
    alias_urn: str
    create_time: str
    update_time: str


class PageInfo(Wire):
    next_marker: str
    current_count: int


class AliasList(Wire):
    aliases: list[AliasOut]
    page_info: PageInfo


class KeyMaterial(Wire):
    material_id: str
    charge_id: str
    create_time: str
    expiration_time: str
    state: int


class KeyRotation(Wire):
    key_rotation_enabled: bool
    rotation_interval: int
    last_rotation_time: str
    number_of_rotations: int
    key_materials: list[KeyMaterial]


class Tag(Wire):
    key: str
    value: str


class KeyTags(Wire):
    tags: list[Tag]
    existTagsNum: int  # noqa: N815 (the wire's name)


class TagValues(Wire):
    key: str
    values: list[str]


class ProjectKeyTags(Wire):
    tags: list[TagValues]


class TaggedKey(Wire):
    resource_id: str
    resource_name: str
    resource_detail: KeyInfo
    tags: list[Tag]


class KeysByTags(Wire):
    resources: list[TaggedKey]
    total_count: int

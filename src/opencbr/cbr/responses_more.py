"""The bodies of CBR's smaller routes (see `core.wire`): vault actions, tags, protectables,
project information and the operator's scrubs."""

from __future__ import annotations

from typing import Any

from opencbr.core.wire import FreeForm, Wire

from .responses import VaultOut

__all__ = [
    "AddedResources",
    "DomainInfo",
    "DomainProjects",
    "ExpirationChanged",
    "ExternalVaults",
    "Features",
    "Metadata",
    "MigratedResources",
    "PolicyAssociated",
    "PolicyDissociated",
    "ProtectableList",
    "ProtectableOne",
    "RemovedResources",
    "ReplicationCapabilities",
    "ScrubLatest",
    "ScrubStarted",
    "ServerFromBackup",
    "SetResources",
    "StorageUsage",
    "Summary",
    "UpdatedVaults",
    "VaultProjectTags",
    "VaultResourceInstances",
    "VaultTags",
]

Features = dict[str, Any]
"""`ListFeatures` and `ShowFeature`: each feature by its key, with its own value."""


class Summary(Wire):
    size: int
    used_size: float


class AddedResources(Wire):
    add_resource_ids: list[str]


class RemovedResources(Wire):
    remove_resource_ids: list[str]


class SetResources(Wire):
    set_resource_ids: list[str]


class MigratedResources(Wire):
    migrated_resources: list[str]


class UpdatedVaults(Wire):
    updated_vaults_id: list[str]


class ExpirationChanged(Wire):
    affected_backups_count: int
    new_expiration_day: str
    operation_log_id: str


class PolicyBinding(Wire):
    vault_id: str
    policy_id: str
    destination_vault_id: None


class PolicyAssociated(Wire):
    associate_policy: PolicyBinding


class PolicyDissociated(Wire):
    dissociate_policy: PolicyBinding


class ServerFromBackup(Wire):
    job_id: str
    server_id: str
    volume_ids: list[str]


class Usage(Wire):
    resource_id: str
    resource_name: str
    resource_type: str
    backup_count: int
    backup_size: int
    backup_size_multiaz: int


class StorageUsage(Wire):
    resource_count: int
    storage_usage: list[Usage]


class RegionReplication(Wire):
    name: str | None
    replication_destinations: list[str]


class ReplicationCapabilities(Wire):
    regions: list[RegionReplication]


class ExternalVaults(Wire):
    vaults: list[VaultOut]
    count: int
    limit: int
    offset: int


class Metadata(Wire):
    """The vendor's answer: JSON documents in strings."""

    backup_id: str
    backups: str
    server: str
    volumes: list[str]
    flavor: str
    floatingips: list[str]
    interface: str
    ports: list[str]
    workspace: str


class NamedProject(Wire):
    project_id: str
    project_name: str


class DomainProjects(Wire):
    projects: list[NamedProject]


class DomainInfo(Wire):
    project_id: str
    project_name: str
    domain_id: str
    domain_name: str


class ProtectableCheck(Wire):
    result: bool
    vault: VaultOut | None
    code: str
    reason: str
    message: str


class ProtectableOut(Wire):
    id: str
    name: str
    type: str
    size: int
    status: str
    detail: FreeForm
    children: list[FreeForm]
    protectable: ProtectableCheck


class ProtectableList(Wire):
    instances: list[ProtectableOut]


class ProtectableOne(Wire):
    instance: ProtectableOut


class Tag(Wire):
    key: str
    value: str


class VaultTags(Wire):
    tags: list[Tag]
    sys_tags: list[Tag]


class TagValues(Wire):
    key: str
    values: list[str]


class VaultProjectTags(Wire):
    tags: list[TagValues]


class VaultInDetail(Wire):
    vault: VaultOut


class VaultResource(Wire):
    resource_id: str
    resource_name: str
    resource_detail: VaultInDetail
    tags: list[Tag]
    sys_tags: list[Tag]


class VaultResourceInstances(Wire):
    """`action=count` answers `total_count` alone."""

    resources: list[VaultResource] | None = None
    total_count: int


class ScrubStarted(Wire):
    job_id: str
    deep: bool


class ScrubLatest(Wire):
    scrub: FreeForm
    at: str

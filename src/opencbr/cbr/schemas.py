"""Request bodies of the CBR API (separate from the tables; unknown keys are ignored)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AddMembersBody",
    "AddResourcesBody",
    "CheckpointBody",
    "RemoveResourcesBody",
    "UpdateBackupBody",
    "UpdateMemberBody",
    "UpdateVaultBody",
    "VaultCreateBody",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ResourceIn(_Body):
    id: str
    type: str
    name: str = ""
    extra_info: dict[str, Any] | None = None


class BillingIn(_Body):
    object_type: str
    protect_type: str = "backup"
    consistent_level: Literal["crash_consistent", "app_consistent"] = "crash_consistent"
    size: int
    charging_mode: str = "post_paid"


class VaultIn(_Body):
    name: str
    billing: BillingIn
    resources: list[ResourceIn] = Field(default_factory=list, max_length=256)
    description: str = Field(default="", max_length=64)
    backup_policy_id: str | None = None
    tags: list[dict[str, str]] = Field(default_factory=list, max_length=10)
    enterprise_project_id: str = Field(default="0", max_length=64)
    auto_bind: bool = False
    bind_rules: dict[str, Any] | None = None
    auto_expand: bool = False


class VaultCreateBody(_Body):
    vault: VaultIn


class BillingUpdateIn(_Body):
    size: int | None = None
    consistent_level: Literal["crash_consistent", "app_consistent"] | None = None


class VaultUpdateIn(_Body):
    name: str | None = None
    billing: BillingUpdateIn | None = None
    auto_bind: bool | None = None
    bind_rules: dict[str, Any] | None = None
    auto_expand: bool | None = None
    smn_notify: bool | None = None
    threshold: int | None = None
    locked: bool | None = None


class UpdateVaultBody(_Body):
    vault: VaultUpdateIn


class AddResourcesBody(_Body):
    resources: list[ResourceIn] = Field(min_length=1, max_length=256)


class RemoveResourcesBody(_Body):
    resource_ids: list[str] = Field(min_length=1, max_length=256)


class CheckpointParamIn(_Body):
    name: str | None = None
    description: str = Field(default="", max_length=255)
    incremental: bool = True
    auto_trigger: bool = False
    resources: list[str] | None = None
    resource_details: list[dict[str, Any]] | None = None
    policy_id: str | None = None
    retention_duration_days: int = Field(default=-1, ge=-1, le=36500)

    @field_validator("retention_duration_days")
    @classmethod
    def _forever_or_days(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (keep forever) or 1..36500")
        return value


class CheckpointIn(_Body):
    vault_id: str
    parameters: CheckpointParamIn | None = None


class CheckpointBody(_Body):
    checkpoint: CheckpointIn


class BackupNameIn(_Body):
    name: str


class UpdateBackupBody(_Body):
    backup: BackupNameIn


class AddMembersBody(_Body):
    # More than 10 is the service's 6701 (S3), not a schema error; the bound only caps the body.
    members: list[str] = Field(default_factory=list, max_length=1000)
    domains: list[str] = Field(default_factory=list, max_length=1000)


class UpdateMemberBody(_Body):
    status: str
    vault_id: str | None = None
    auto_bind: bool = False


# --- policies (CreatePolicy, UpdatePolicy, AssociateVaultPolicy, DisassociateVaultPolicy) ---


class OperationDefinitionIn(_Body):
    max_backups: int | None = None
    retention_duration_days: int | None = None
    day_backups: int | None = None
    week_backups: int | None = None
    month_backups: int | None = None
    year_backups: int | None = None
    timezone: str | None = None
    full_backup_interval: int | None = None
    advanced_retention_rules: dict[str, Any] | None = None


class TriggerPropertiesIn(_Body):
    pattern: list[str] | None = None
    start_window_minutes: int | None = None


class TriggerIn(_Body):
    properties: TriggerPropertiesIn


class PolicyCreateIn(_Body):
    name: str
    enabled: bool = True
    operation_type: str
    operation_definition: OperationDefinitionIn
    trigger: TriggerIn


class PolicyCreateBody(_Body):
    policy: PolicyCreateIn


class PolicyUpdateIn(_Body):
    name: str | None = None
    enabled: bool | None = None
    operation_definition: OperationDefinitionIn | None = None
    trigger: TriggerIn | None = None


class PolicyUpdateBody(_Body):
    policy: PolicyUpdateIn


class AssociatePolicyBody(_Body):
    policy_id: str | None = None
    add_policy_ids: list[str] = Field(default_factory=list, max_length=10)
    destination_vault_id: str | None = None


class DissociatePolicyBody(_Body):
    policy_id: str


__all__ += [
    "AssociatePolicyBody",
    "DissociatePolicyBody",
    "PolicyCreateBody",
    "PolicyUpdateBody",
]


class RestoreMappingIn(_Body):
    backup_id: str
    volume_id: str


class RestoreIn(_Body):
    volume_id: str | None = None
    resource_id: str | None = None
    server_id: str | None = None
    mappings: list[RestoreMappingIn] = Field(default_factory=list, max_length=64)
    power_on: bool = True
    nbd_uri: str | None = Field(default=None, min_length=1, max_length=1024)
    """Our extension: restore a disk backup onto this NBD export instead of a disk."""
    tls_psk_file: str = Field(default="", max_length=1024)

    @model_validator(mode="after")
    def _one_kind_of_target(self) -> RestoreIn:
        if self.nbd_uri is not None and (self.volume_id or self.server_id or self.mappings):
            raise ValueError(
                "nbd_uri is a target of its own: give no volume_id, server_id or mappings"
            )
        return self


class RestoreBody(_Body):
    restore: RestoreIn


class ServerFromBackupIn(_Body):
    name: str
    availability_zone: str | None = None
    kms_key_id: str | None = None


class ServerFromBackupBody(_Body):
    server: ServerFromBackupIn

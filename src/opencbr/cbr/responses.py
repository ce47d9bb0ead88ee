"""The bodies of the CBR routes as they answer (see `core.wire`): the vendor's v3 fields and
the extensions its real answers carry (`views.py` builds them)."""

from __future__ import annotations

from opencbr.core.wire import FreeForm, Wire

__all__ = [
    "BackupList",
    "BackupOne",
    "CheckpointOne",
    "MemberList",
    "MemberOne",
    "OpLogList",
    "OpLogOne",
    "PolicyList",
    "PolicyOne",
    "VaultList",
    "VaultOne",
]


class ResourceOut(Wire):
    id: str
    name: str
    type: str
    protect_status: str
    size: int
    backup_size: int
    backup_count: int
    auto_protect: bool
    extra_info: FreeForm


class BillingOut(Wire):
    allocated: int
    size: int
    used: float
    status: str
    charging_mode: str
    cloud_type: str
    consistent_level: str
    object_type: str
    protect_type: str
    spec_code: str
    order_id: None
    product_id: None
    storage_unit: None
    frozen_scene: None
    is_multi_az: bool
    is_double_az: bool
    partner_bp_id: None


class VaultOut(Wire):
    id: str
    name: str
    description: str
    project_id: str
    provider_id: str
    user_id: str
    created_at: str
    enterprise_project_id: str
    auto_bind: bool
    bind_rules: FreeForm
    auto_expand: bool
    smn_notify: bool
    threshold: int
    tags: list[FreeForm]
    locked: bool
    availability_zone: None
    resources: list[ResourceOut]
    backup_name_prefix: str
    cbc_delete_count: int
    cross_account: bool
    cross_account_urn: None
    demand_billing: bool
    frozen: bool
    supplier: None
    sys_lock_source_service: None
    billing: BillingOut
    policy_id: str | None


class VaultOne(Wire):
    vault: VaultOut


class VaultList(Wire):
    vaults: list[VaultOut]
    count: int
    limit: int
    offset: int


class AppConsistencyOut(Wire):
    app_consistency: str
    app_consistency_status: str
    app_consistency_error_code: str
    app_consistency_error_message: str


class BackupExtendInfo(Wire):
    auto_trigger: bool
    bootable: bool
    encrypted: bool
    snapshot_id: None
    support_lld: bool
    supported_restore_mode: str
    os_images_data: list[FreeForm]
    contain_system_disk: bool
    system_disk: bool
    is_multi_az: bool
    progress: int
    architecture: str
    encrypted_algorithm: str | None
    is_dec: bool
    app_consistency: AppConsistencyOut


class BackupOut(Wire):
    id: str
    name: str
    description: str
    checkpoint_id: str
    vault_id: str | None
    project_id: str
    provider_id: str
    parent_id: str | None
    status: str
    image_type: str
    resource_id: str
    resource_name: str
    resource_az: str
    resource_size: int
    resource_type: str
    created_at: str
    updated_at: str | None
    expired_at: str | None
    protected_at: str | None
    extend_info: BackupExtendInfo
    scheduled_operation_id: None
    children: list[BackupOut]
    replication_records: list[FreeForm]
    enterprise_project_id: str
    incremental: bool
    version: int
    size: float
    stored_size: float
    kms_key_id: str | None
    member_status: str | None = None  # a recipient's view: its member status
    shared: bool | None = None  # a recipient's view: true


class BackupOne(Wire):
    backup: BackupOut


class BackupList(Wire):
    backups: list[BackupOut]
    count: int
    limit: int
    offset: int


class CheckpointResource(Wire):
    id: str
    name: str
    type: str
    protect_status: str
    resource_size: str
    backup_size: str
    backup_count: str
    extra_info: FreeForm


class CheckpointVault(Wire):
    id: str
    name: str
    resources: list[CheckpointResource]
    skipped_resources: list[FreeForm]


class CheckpointExtraInfo(Wire):
    name: str
    description: str
    retention_duration: int


class CheckpointOut(Wire):
    id: str
    project_id: str
    created_at: str
    status: str
    extra_info: CheckpointExtraInfo
    vault: CheckpointVault


class CheckpointOne(Wire):
    checkpoint: CheckpointOut


class MemberOut(Wire):
    id: str
    backup_id: str
    dest_project_id: str
    status: str
    vault_id: str | None
    image_id: str | None
    created_at: str
    updated_at: str | None


class MemberOne(Wire):
    member: MemberOut


class MemberList(Wire):
    members: list[MemberOut]
    count: int


class OpLogError(Wire):
    code: str
    message: str


class OpLogOut(Wire):
    id: str
    project_id: str
    provider_id: str
    checkpoint_id: str
    policy_id: str
    vault_id: str
    vault_name: str
    operation_type: str
    status: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    updated_at: str | None
    error_info: OpLogError
    extra_info: FreeForm


class OpLogOne(Wire):
    operation_log: OpLogOut


class OpLogList(Wire):
    operation_logs: list[OpLogOut]
    count: int
    limit: int
    offset: int


class TriggerProperties(Wire):
    pattern: list[str]
    start_time: str
    start_window_minutes: int


class TriggerOut(Wire):
    id: str
    name: str
    type: str
    properties: TriggerProperties


class AssociatedVault(Wire):
    vault_id: str
    destination_vault_id: None


class PolicyOut(Wire):
    id: str
    name: str
    enabled: bool
    operation_type: str
    operation_definition: FreeForm
    trigger: TriggerOut
    associated_vaults: list[AssociatedVault]
    policy_type: str


class PolicyOne(Wire):
    policy: PolicyOut


class PolicyList(Wire):
    policies: list[PolicyOut]
    count: int

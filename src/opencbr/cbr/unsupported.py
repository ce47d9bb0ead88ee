"""Published CBR v3 operations this service does not serve (answered `APIGW.0101`).

The exemptions are lasting (agents, organization policies, account migration, orders); the
`planned` ones are meant to be served (docs/api-coverage.md lists both).
"""

from __future__ import annotations

from opencbr.core.unsupported import NotSupportedOperation

__all__ = ["NOT_SUPPORTED"]

_AGENTS = "backup agents (file and application backup, hybrid cloud) are not part of OpenCBR"
_ORGANIZATION = "organization policies need an organization service that OpenCBR does not have"
_MIGRATION = "migrating an account between sites is not offered"
_ORDERS = "OpenCBR has no orders or billing; every vault is pay-per-use"
_REPLICATION = "replication between regions is not implemented yet"
_SYNC = "importing backups from a hybrid-cloud site is not implemented yet"
_LATER = "not implemented yet"


def _op(sdk_method: str, method: str, path: str, reason: str) -> NotSupportedOperation:
    planned = reason in (_REPLICATION, _SYNC, _LATER)
    return NotSupportedOperation(sdk_method, method, "/v3" + path, reason, planned)


NOT_SUPPORTED: tuple[NotSupportedOperation, ...] = (
    _op("add_agent_path", "POST", "/{project_id}/agents/{agent_id}/add-path", _AGENTS),
    _op("check_agent", "POST", "/{project_id}/agent/check", _AGENTS),
    _op("list_agent", "GET", "/{project_id}/agents", _AGENTS),
    _op("register_agent", "POST", "/{project_id}/agents", _AGENTS),
    _op("remove_agent_path", "POST", "/{project_id}/agents/{agent_id}/remove-path", _AGENTS),
    _op("show_agent", "GET", "/{project_id}/agents/{agent_id}", _AGENTS),
    _op("unregister_agent", "DELETE", "/{project_id}/agents/{agent_id}", _AGENTS),
    _op("update_agent", "PUT", "/{project_id}/agents/{agent_id}", _AGENTS),
    _op("create_organization_policy", "POST", "/{project_id}/organization-policies", _ORGANIZATION),
    _op(
        "delete_organization_policy",
        "DELETE",
        "/{project_id}/organization-policies/{organization_policy_id}",
        _ORGANIZATION,
    ),
    _op("list_organization_policies", "GET", "/{project_id}/organization-policies", _ORGANIZATION),
    _op(
        "list_organization_policy_detail",
        "GET",
        "/{project_id}/organization-policies/{organization_policy_id}/policy-detail",
        _ORGANIZATION,
    ),
    _op(
        "show_organization_policy",
        "GET",
        "/{project_id}/organization-policies/{organization_policy_id}",
        _ORGANIZATION,
    ),
    _op(
        "update_organization_policy",
        "PUT",
        "/{project_id}/organization-policies/{organization_policy_id}",
        _ORGANIZATION,
    ),
    _op("migrate_domain", "POST", "/migrates", _MIGRATION),
    _op("show_migrate_status", "GET", "/migrates", _MIGRATION),
    _op("change_order", "POST", "/{project_id}/orders/change", _ORDERS),
    _op("update_order", "PUT", "/{project_id}/orders/{order_id}", _ORDERS),
    _op("change_vault_charge_mode", "POST", "/{project_id}/vaults/change-charge-mode", _ORDERS),
    _op("create_post_paid_vault", "POST", "/{project_id}/vaults/order", _ORDERS),
    _op("copy_backup", "POST", "/{project_id}/backups/{backup_id}/replicate", _REPLICATION),
    _op("copy_checkpoint", "POST", "/{project_id}/checkpoints/replicate", _REPLICATION),
    _op("import_backup", "POST", "/{project_id}/backups/sync", _SYNC),
    _op("import_checkpoint", "POST", "/{project_id}/checkpoints/sync", _SYNC),
)

"""Published EVS operations this service does not serve (answered `APIGW.0101`).

The exemptions are lasting (the v5 snapshot API, QoS and retyping, billing); the `planned`
ones are meant to be served (docs/api-coverage.md lists both).
"""

from __future__ import annotations

from opencbr.core.unsupported import NotSupportedOperation

__all__ = ["NOT_SUPPORTED"]

_V5 = (
    "the v5 API (standard snapshots, snapshot groups and chains, automatic snapshot policies)"
    " is not offered"
)
_BATCH = "the v5 batch resize is not offered"
_QOS = "disks have no performance classes here: QoS and disk types cannot be changed"
_ORDERS = "OpenCBR has no orders or billing; every disk is pay-per-use"
_TRANSFER = "disk transfers between projects are not implemented yet"
_LATER = "not implemented yet"


def _op(sdk_method: str, method: str, path: str, reason: str) -> NotSupportedOperation:
    planned = reason in (_TRANSFER, _LATER)
    return NotSupportedOperation(sdk_method, method, path, reason, planned)


NOT_SUPPORTED: tuple[NotSupportedOperation, ...] = (
    _op(
        "associate_auto_snapshot_policy",
        "POST",
        "/v5/{project_id}/snapshot-policies/{snapshot_policy_id}/associate",
        _V5,
    ),
    _op(
        "batch_create_snapshot_group_tag",
        "POST",
        "/v5/{project_id}/snapshot-groups/{snapshot_group_id}/tags/create",
        _V5,
    ),
    _op(
        "batch_create_snapshot_tags",
        "POST",
        "/v5/{project_id}/snapshots/{snapshot_id}/tags/create",
        _V5,
    ),
    _op(
        "batch_delete_snapshot_group_tag",
        "POST",
        "/v5/{project_id}/snapshot-groups/{snapshot_group_id}/tags/delete",
        _V5,
    ),
    _op(
        "batch_delete_snapshot_tags",
        "POST",
        "/v5/{project_id}/snapshots/{snapshot_id}/tags/delete",
        _V5,
    ),
    _op("batch_resize_volumes", "POST", "/v5/{project_id}/volumes/batch-extend", _BATCH),
    _op(
        "change_volume_charge_mode",
        "POST",
        "/v2/{project_id}/cloudvolumes/change-charge-mode",
        _ORDERS,
    ),
    _op("count_auto_snapshot_policies", "GET", "/v5/{project_id}/snapshot-policies/count", _V5),
    _op("count_snapshot_chains", "GET", "/v5/{project_id}/snapshot-chains/count", _V5),
    _op("count_snapshots", "GET", "/v5/{project_id}/snapshots/count", _V5),
    _op("count_snapshots_group", "GET", "/v5/{project_id}/snapshot-groups/count", _V5),
    _op("create_auto_snapshot_policy", "POST", "/v5/{project_id}/snapshot-policies", _V5),
    _op("create_snapshot_group", "POST", "/v5/{project_id}/snapshot-groups", _V5),
    _op("create_standard_snapshot", "POST", "/v5/{project_id}/snapshots", _V5),
    _op(
        "delete_auto_snapshot_policy",
        "DELETE",
        "/v5/{project_id}/snapshot-policies/{snapshot_policy_id}",
        _V5,
    ),
    _op(
        "delete_snapshot_group",
        "DELETE",
        "/v5/{project_id}/snapshot-groups/{snapshot_group_id}",
        _V5,
    ),
    _op("delete_standard_snapshot", "DELETE", "/v5/{project_id}/snapshots/{snapshot_id}", _V5),
    _op(
        "disassociate_auto_snapshot_policy",
        "POST",
        "/v5/{project_id}/snapshot-policies/{snapshot_policy_id}/disassociate",
        _V5,
    ),
    _op("list_auto_snapshot_policy", "GET", "/v5/{project_id}/snapshot-policies", _V5),
    _op("list_snapshot_chains", "GET", "/v5/{project_id}/snapshot-chains", _V5),
    _op("list_snapshot_group", "GET", "/v5/{project_id}/snapshot-groups/detail", _V5),
    _op("list_snapshot_group_tags", "GET", "/v5/{project_id}/snapshot-groups/tags", _V5),
    _op("list_snapshot_tags", "GET", "/v5/{project_id}/snapshots/tags", _V5),
    _op("list_snapshots_details", "GET", "/v5/{project_id}/snapshots/detail", _V5),
    _op("modify_volume_qo_s", "PUT", "/v5/{project_id}/cloudvolumes/{volume_id}/qos", _QOS),
    _op("retype_volume", "POST", "/v2/{project_id}/volumes/{volume_id}/retype", _QOS),
    _op(
        "rollback_standard_snapshot",
        "POST",
        "/v5/{project_id}/snapshots/{snapshot_id}/rollback",
        _V5,
    ),
    _op(
        "show_auto_snapshot_policy",
        "GET",
        "/v5/{project_id}/snapshot-policies/{snapshot_policy_id}",
        _V5,
    ),
    _op("show_snapshot_group", "GET", "/v5/{project_id}/snapshot-groups/{snapshot_group_id}", _V5),
    _op("show_standard_snapshot", "GET", "/v5/{project_id}/snapshots/{snapshot_id}", _V5),
    _op(
        "unsubscribe_postpaid_volume", "POST", "/v2/{project_id}/cloudvolumes/unsubscribe", _ORDERS
    ),
    _op(
        "update_auto_snapshot_policy",
        "PUT",
        "/v5/{project_id}/snapshot-policies/{snapshot_policy_id}",
        _V5,
    ),
    _op(
        "update_snapshot_group", "PUT", "/v5/{project_id}/snapshot-groups/{snapshot_group_id}", _V5
    ),
    _op("update_standard_snapshot", "PUT", "/v5/{project_id}/snapshots/{snapshot_id}", _V5),
)

"""The CBR error catalogue (`BackupService.NNNN`, as the reference's table gives them)."""

from __future__ import annotations

from opencbr.core.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from opencbr.core.idempotency import TokenErrors

__all__ = [
    "CLIENT_TOKEN_ERRORS",
    "AcceptVaultTypeMismatch",
    "BackupCannotBeDeleted",
    "BackupDataCorrupt",
    "BackupKeptByLock",
    "BackupNotFound",
    "BackupNotRestorable",
    "CatalogueUnreadable",
    "CheckpointNotFound",
    "ClientTokenReused",
    "EncryptedBackupNeedsGrant",
    "FileBrowserBusy",
    "FileBrowserUnavailable",
    "FileNotInBackup",
    "FilePathInvalid",
    "FileTypeRefused",
    "FilesNeedDiskBackup",
    "FilesystemUnreadable",
    "MemberExists",
    "MemberLimitReached",
    "MemberNotFound",
    "MemberUpdateFailed",
    "MemberValueInvalid",
    "NotBackupOwner",
    "NotTheRecipient",
    "NothingToBackup",
    "OperationLogNotFound",
    "PolicyNotFound",
    "ReceivedBackupNotShareable",
    "RecipientProjectInvalid",
    "RecoveryRefused",
    "ResourceAlreadyProtected",
    "ResourceBusy",
    "ResourceNotFound",
    "RestoreTargetTooSmall",
    "ShareNotAllowed",
    "ShareStatusForbidden",
    "ShareTypeUnsupported",
    "SharedBackupNotDeletable",
    "TagNotFound",
    "TaskRunning",
    "VaultCapacityInsufficient",
    "VaultCapacityInvalid",
    "VaultLockPermanent",
    "VaultNotEmpty",
    "VaultNotFound",
    "VaultResourceLimit",
    "VaultStatusForbids",
    "VaultStatusForbidsShare",
    "VaultTypeMismatch",
]


class NothingToBackup(BadRequest):
    code = "BackupService.0001"
    template = "Vault {vault_id} has no resources to back up."


class ResourceBusy(BadRequest):
    code = "BackupService.0002"
    template = "Resource {resource_id} is already being backed up or restored."


class RestoreTargetInvalid(BadRequest):
    code = "BackupService.2002"
    template = "Cannot restore backup {backup_id} there: {reason}."


class RestoreTargetTooSmall(BadRequest):
    code = "BackupService.2001"
    template = (
        "Target disk {volume_id} ({target_gb} GB) is smaller than the backup ({backup_gb} GB)."
    )


class BackupNotRestorable(BadRequest):
    code = "BackupService.2005"
    template = "Backup {backup_id} is {status}; only available backups can be restored or used."


class VaultResourceLimit(BadRequest):
    code = "BackupService.6100"
    template = "A vault holds at most {limit} resources."


class VaultCapacityInvalid(BadRequest):
    code = "BackupService.6101"
    template = "Invalid vault capacity {size} GB: {reason}."


class VaultTypeMismatch(BadRequest):
    code = "BackupService.6102"
    template = "A {object_type} vault cannot protect {resource_type} resources."


class ResourceAlreadyProtected(BadRequest):
    code = "BackupService.6103"
    template = "Resource {resource_id} is already associated with a vault."


class VaultNotFound(NotFound):
    code = "BackupService.6105"
    template = "Vault {id} not found."


class VaultNotEmpty(BadRequest):
    code = "BackupService.6111"
    template = "Vault {vault_id} cannot be deleted: {reason}."


class VaultStatusForbids(BadRequest):
    code = "BackupService.6113"
    template = "Vault {vault_id} is {status}; backups are not allowed in this status."


class TagNotFound(NotFound):
    code = "BackupService.6160"
    template = "The vault has no tag with key {id}."


class VaultLockPermanent(BadRequest):
    code = "BackupService.6112"
    template = "Vault {vault_id} is locked; a vault lock cannot be removed."


class BackupKeptByLock(BadRequest):
    code = "BackupService.6220"
    template = (
        "Backup {backup_id} is kept by locked vault {vault_id} until its retention ends "
        "({until}); it cannot be removed before then."
    )


class VaultCapacityInsufficient(BadRequest):
    code = "BackupService.6114"
    template = (
        "Vault {vault_name} ({vault_id}) has {free_mb} MB free; {needed_mb} MB are needed. "
        "Expand the vault or free space."
    )


class TaskRunning(BadRequest):
    code = "BackupService.6125"
    template = "A backup task is already running for {resource_id}."


class BackupNotFound(NotFound):
    code = "BackupService.6200"
    template = "Backup {id} not found."


class BackupCannotBeDeleted(BadRequest):
    code = "BackupService.6201"
    template = "Backup {backup_id} cannot be deleted: {reason}."


class CheckpointNotFound(NotFound):
    code = "BackupService.6217"
    template = "Checkpoint {id} not found."


class RestoreDiskNotFound(NotFound):
    code = "BackupService.7000"
    template = "Disk {id} not found."


class RestoreServerNotFound(NotFound):
    code = "BackupService.7100"
    template = "Server {id} not found."


class ResourceNotFound(NotFound):
    code = "BackupService.6302"
    template = "Resource {id} not found."


class PolicyNotFound(NotFound):
    code = "BackupService.6401"
    template = "Policy {id} not found."


class OperationLogNotFound(NotFound):
    code = "BackupService.6500"
    template = "Operation log does not exist."


class ShareTypeUnsupported(BadRequest):
    code = "BackupService.6700"
    template = "Backups of {resource_type} resources cannot be shared."


class MemberLimitReached(BadRequest):
    code = "BackupService.6701"
    template = (
        "A backup can be shared with at most {limit} projects; it has {current}, {adding} asked."
    )


class ShareStatusForbidden(BadRequest):
    code = "BackupService.6702"
    template = "Backup {backup_id} is {status}; only available backups can be shared."


class MemberExists(BadRequest):
    code = "BackupService.6703"
    template = "Backup {backup_id} is already shared with project {project_id}."


class RecipientProjectInvalid(BadRequest):
    code = "BackupService.6704"
    template = "Project {project_id} cannot receive this backup: {reason}."


class MemberNotFound(NotFound):
    code = "BackupService.6705"
    template = "Share member {id} not found."


class MemberValueInvalid(BadRequest):
    code = "BackupService.6706"
    template = "Invalid member update: {reason}."


class ShareNotAllowed(BadRequest):
    code = "BackupService.6707"
    template = "Sharing is not allowed: {reason}."


class MemberUpdateFailed(Conflict):
    status = 400
    code = "BackupService.6708"
    template = "The member of backup {backup_id} changed meanwhile; it is now {status}."


class SharedBackupNotDeletable(BadRequest):
    code = "BackupService.6711"
    template = (
        "Shared-backup deletion failed: only the owner can delete backup {backup_id}; "
        "reject the share instead."
    )


class VaultStatusForbidsShare(BadRequest):
    code = "BackupService.6712"
    template = "Vault {vault_id} is {status}; it cannot accept shared backups."


class AcceptVaultTypeMismatch(BadRequest):
    code = "BackupService.6713"
    template = "A {object_type} backup can only be accepted into a {object_type} vault."


class ReceivedBackupNotShareable(BadRequest):
    code = "BackupService.6714"
    template = "Backup {backup_id} was shared with this project; it cannot be shared on."


class EncryptedBackupNeedsGrant(BadRequest):
    code = "BackupService.6709"
    template = (
        "Backup {backup_id} is encrypted with KMS key {key_id} of another account; account "
        "{domain_id} needs a KMS grant on that key ({operation}) before it can use the backup."
    )


class NotBackupOwner(Forbidden):
    code = "BackupService.6715"
    template = "Only the project that owns backup {backup_id} can {action}."


class NotTheRecipient(Forbidden):
    code = "BackupService.6716"
    template = "Only the recipient project {member_id} can change its member status."


class BackupDataCorrupt(AppError):
    """The store holds a block or object of the backup that fails its check (it does not
    authenticate, decompress or hash to its id): the chunk store's `CorruptBlock` and
    `CorruptObject`, under the one code a job and its operation log both record. Not retried:
    the stored bytes will not heal."""

    code = "BackupService.9920"
    template = "The backup's stored data is damaged: {detail}"


class CatalogueUnreadable(AppError):
    """The store's catalogue cannot be opened: wrong root or recovery key, or damage."""

    code = "BackupService.9921"
    template = "The store's catalogue cannot be read: {reason}."
    exit_code = 6


class RecoveryRefused(Conflict):
    code = "BackupService.9922"
    template = "Recovery refused: {reason}."


# --- file-level restore (files/) ------------------------------------------------------------


class FilePathInvalid(BadRequest):
    code = "BackupService.9940"
    template = "Path {path!r} is not valid in a backup: {reason}."


class FileNotInBackup(NotFound):
    code = "BackupService.9941"
    template = "Backup {backup_id} has no {path}."


class FileTypeRefused(BadRequest):
    code = "BackupService.9942"
    template = "{path} in backup {backup_id} is {kind}: {hint}."


class FilesystemUnreadable(AppError):
    """The filesystem cannot be parsed (damaged, unknown, or its reader stopped answering):
    the stored blocks themselves are sound (they passed their checks)."""

    status = 422
    code = "BackupService.9943"
    template = "Filesystem {filesystem} of backup {backup_id} cannot be read: {reason}."


class FileBrowserUnavailable(AppError):
    status = 501
    code = "BackupService.9944"
    template = "Browsing files is not available on this server: {reason}."

    INSTALL = "install the Debian packages libguestfs-tools, python3-guestfs and linux-image-amd64"


class FileBrowserBusy(AppError):
    status = 503
    code = "BackupService.9945"
    template = "All {limit} file browsers of this server are busy; try again when one is free."


class FilesNeedDiskBackup(BadRequest):
    code = "BackupService.9946"
    template = "Backup {backup_id} is a server backup; browse one of its disk backups: {disks}."


class ClientTokenReused(Conflict):
    code = "BackupService.9947"
    template = (
        "Client token {token} already named another request of this project in the last 24 "
        "hours; use a new token for a new request."
    )


CLIENT_TOKEN_ERRORS = TokenErrors(invalid=ValidationFailed, reused=ClientTokenReused)

"""EVS errors (`EVS.NNNN`; the API renders them in EVS's nested `{"error": {"code", ...}}`)."""

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
    "AgencyMissing",
    "ClientTokenReused",
    "DiskHasSnapshots",
    "DiskInUse",
    "DiskNotAttached",
    "DiskNotFound",
    "DiskNotInRecycleBin",
    "DiskRangeInvalid",
    "DiskStatusConflict",
    "EvsValidationFailed",
    "ExternalDiskDataPath",
    "ExternalSourceInvalid",
    "FromBackupUnavailable",
    "JobNotFound",
    "LengthRequired",
    "NbdExportConflict",
    "NbdExportNotFound",
    "NbdServerMissing",
    "NbdSettingsInvalid",
    "NbdUnavailable",
    "ServerNotFound",
    "ServerStatusConflict",
    "SnapshotNotFound",
    "SnapshotStatusConflict",
    "SystemDiskDetach",
    "TransferNotFound",
    "TransferRefused",
    "WriteIncomplete",
]


class EvsValidationFailed(ValidationFailed):
    """Malformed or out-of-range request parameters of an EVS call."""

    code = "EVS.0400"
    template = "Parameter validation failed: {reason}"


class AgencyMissing(Forbidden):
    code = "EVS.0403"
    template = (
        "Encrypted disks need the agency {agency} in account {domain_id}, so that the disk "
        "service may use KMS keys: run `opencbr kms agency enable`, or use the console's "
        "KMS Keys page, or create it through IAM (trust_domain_name op_svc_evs)."
    )


class DiskNotFound(NotFound):
    code = "EVS.0404"
    template = "Disk {id} not found."


class ServerNotFound(NotFound):
    code = "EVS.0405"
    template = "Server {id} not found."


class DiskStatusConflict(Conflict):
    status = 400
    code = "EVS.0409"
    template = "Disk {id} is {status}; this needs it to be {expected}."


class ServerStatusConflict(Conflict):
    status = 400
    code = "EVS.0410"
    template = "Server {id} is {status}; this needs it to be {expected}."


class DiskInUse(BadRequest):
    code = "EVS.0411"
    template = "Disk {id} is attached to server {server_id}."


class DiskRangeInvalid(BadRequest):
    """A byte range that is negative, misaligned or past the end of the disk. Nothing changed."""

    code = "EVS.0412"
    template = "Invalid range on disk {id}: {reason}"


class WriteIncomplete(BadRequest):
    """The request body ended before (or ran past) its Content-Length."""

    code = "EVS.0413"
    template = "Write to disk {id}: {reason}"


class FromBackupUnavailable(AppError):
    status = 501
    code = "EVS.0414"
    template = "Creating a disk from a backup is not available: the backup service is not running."


class SystemDiskDetach(BadRequest):
    code = "EVS.0415"
    template = "Disk {id} is the system disk of server {server_id}: stop the server first."


class DiskNotAttached(BadRequest):
    code = "EVS.0416"
    template = "Disk {id} is not attached to server {server_id}."


class LengthRequired(BadRequest):
    status = 411
    code = "EVS.0417"
    template = "A data upload needs a Content-Length header."


class JobNotFound(NotFound):
    code = "EVS.0418"
    template = "Job {id} not found."


class TransferNotFound(NotFound):
    code = "EVS.0406"
    template = "Disk transfer {id} not found."


class TransferRefused(BadRequest):
    code = "EVS.0422"
    template = "Disk transfer refused: {reason}."


class ExternalSourceInvalid(BadRequest):
    """An NBD source that cannot be registered or restored onto as given. Nothing changed."""

    code = "EVS.0433"
    template = "Cannot use NBD source {uri}: {reason}"


class ExternalDiskDataPath(BadRequest):
    code = "EVS.0434"
    template = (
        "Disk {id} is an external disk: its bytes live in its NBD source {uri}; read and write "
        "them there."
    )


class NbdUnavailable(AppError):
    """The NBD protocol engine (nbdkit with its Python plugin) is not installed or did not start."""

    status = 503
    code = "EVS.0419"
    template = (
        "NBD export is not available on this server: {reason}. It needs the Debian packages "
        "nbdkit and nbdkit-plugin-python (apt-get install nbdkit nbdkit-plugin-python)."
    )


class NbdSettingsInvalid(AppError):
    """The NBD settings cannot make a server: where it listens and its TLS do not fit."""

    status = 503
    code = "EVS.0435"
    template = "The NBD server cannot start: {reason}."


class NbdServerMissing(AppError):
    """API processes without an NBD server of their own found no running one to name."""

    status = 503
    code = "EVS.0436"
    template = (
        "No NBD server of this deployment is running: start one with `opencbr nbd serve` "
        "(OPENCBR_NBD_EMBEDDED=false keeps it out of the API processes)."
    )


class NbdExportNotFound(NotFound):
    code = "EVS.0420"
    template = "Disk {id} has no open NBD export."


class NbdExportConflict(Conflict):
    code = "EVS.0421"
    template = "Disk {id} is already exported {mode}; close that export first."


class SnapshotNotFound(NotFound):
    code = "EVS.0407"
    template = "Snapshot {id} not found."


class DiskHasSnapshots(BadRequest):
    code = "EVS.0423"
    template = "Disk {id} has {count} snapshot(s): delete them first."


class SnapshotStatusConflict(Conflict):
    status = 400
    code = "EVS.0424"
    template = "Snapshot {id} is {status}; this needs it to be {expected}."


class DiskNotInRecycleBin(NotFound):
    code = "EVS.0408"
    template = "Disk {id} is not in the recycle bin."


class ClientTokenReused(Conflict):
    code = "EVS.0437"
    template = (
        "Client token {token} already named another request of this project in the last 24 "
        "hours; use a new token for a new request."
    )


CLIENT_TOKEN_ERRORS = TokenErrors(invalid=EvsValidationFailed, reused=ClientTokenReused)

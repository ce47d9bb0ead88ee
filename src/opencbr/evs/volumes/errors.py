"""Errors of the block-volume layer.

Each class also derives from the generic error of `opencbr.core.errors` that matches it, so the
API edge answers with the right status and code without knowing this layer.
"""

from __future__ import annotations

from opencbr.core.errors import AppError, BadRequest, Conflict, NotFound, ValidationFailed

__all__ = [
    "BackupInProgress",
    "InvalidVolumeId",
    "NbdSourceFailed",
    "NbdUriInvalid",
    "RangeError",
    "StreamLengthMismatch",
    "ViewClosed",
    "VolumeCorrupt",
    "VolumeError",
    "VolumeExists",
    "VolumeKeyError",
    "VolumeNotFound",
]


class VolumeError(AppError):
    """Base of every error raised by a volume driver."""


class InvalidVolumeId(VolumeError, ValidationFailed):
    template = "Invalid volume id {volume_id!r}: {reason}"


class VolumeNotFound(VolumeError, NotFound):
    template = "Volume {volume_id} not found."


class VolumeExists(VolumeError, Conflict):
    template = "Volume {volume_id} already exists."


class RangeError(VolumeError, BadRequest):
    """A byte range that is negative, misaligned or past the end of the disk. Nothing changed."""

    template = "Invalid range on volume {volume_id}: {reason}"


class StreamLengthMismatch(VolumeError, BadRequest):
    """A write stream delivered more or fewer bytes than announced."""

    template = "Write to volume {volume_id}: {reason}"


class VolumeKeyError(VolumeError, BadRequest):
    """A missing, malformed or wrong data key, or a key given for a plain volume."""

    template = "Volume {volume_id}: {reason}"


class BackupInProgress(VolumeError, Conflict):
    template = "Volume {volume_id} has a backup view open: {reason}"


class ViewClosed(VolumeError, Conflict):
    template = "The backup view of volume {volume_id} is already closed."


class VolumeCorrupt(VolumeError):
    """On-disk state that this layer cannot read back (status 500: an operator must look)."""

    template = "Volume {volume_id} is damaged: {reason}"


class NbdUriInvalid(VolumeError, ValidationFailed):
    """An NBD URI, bitmap name or TLS key file that cannot be used. Nothing changed."""

    code = "EVS.0431"
    template = "Invalid NBD source {uri!r}: {reason}"


class NbdSourceFailed(VolumeError):
    """The NBD server could not be reached, went away, or failed a request (status 502)."""

    status = 502
    code = "EVS.0432"
    template = "NBD source {uri}: {reason}"

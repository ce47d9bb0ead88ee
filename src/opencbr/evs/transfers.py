"""Disk transfers between projects (the vendor's Cinder `os-volume-transfer`).

The disk's project offers an available, unencrypted disk; it is then `awaiting-transfer` (no
I/O, no attach) until a project of the same region presents the transfer id and its auth key
(shown once, at the offer), which moves the disk to that project, or until the offering
project withdraws the offer. An encrypted disk stays: its key is its project's KMS key. The
offering project lists, shows and withdraws its offers; the id and key are all another
project needs, and a wrong key answers like an unknown transfer (S14).

What the backup service made of the disk stays with the offering project (its backups are its
own); a vault that protected the disk no longer finds it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.ids import is_uuid, new_uuid

from .errors import EvsValidationFailed, TransferNotFound, TransferRefused
from .models import Disk, DiskStatus, DiskTransfer, NbdExport, Snapshot
from .service import get_disk, transition_disk

__all__ = ["Offer", "accept", "get_offer", "list_offers", "offer", "withdraw"]


def _digest(auth_key: str) -> str:
    return hashlib.sha256(auth_key.encode()).hexdigest()


@dataclass(frozen=True)
class Offer:
    transfer: DiskTransfer
    auth_key: str


def _project(actor: Actor) -> str:
    assert actor.project_id is not None
    return actor.project_id


def offer(session: Session, actor: Actor, volume_id: str, name: str) -> Offer:
    if len(name) > 255:
        raise EvsValidationFailed(reason="transfer.name is at most 255 characters")
    disk = get_disk(session, _project(actor), volume_id, lock=True)
    if disk.encrypted:
        raise TransferRefused(reason="an encrypted disk stays with the project of its key")
    if session.scalar(select(NbdExport.id).where(NbdExport.disk_id == disk.id)) is not None:
        # The export's name belongs to this project: the disk would stay readable through it.
        raise TransferRefused(reason="the disk is exported over NBD: close the export first")
    transition_disk(session, disk, [DiskStatus.AVAILABLE], DiskStatus.AWAITING_TRANSFER)
    auth_key = secrets.token_hex(8)
    transfer = DiskTransfer(
        id=new_uuid(),
        volume_id=disk.id,
        project_id=disk.project_id,
        name=name,
        auth_key_sha256=_digest(auth_key),
    )
    session.add(transfer)
    session.flush()
    return Offer(transfer, auth_key)


def get_offer(session: Session, actor: Actor, transfer_id: str) -> DiskTransfer:
    """One of the caller's own offers."""
    found = None
    if is_uuid(transfer_id):
        found = session.scalar(
            select(DiskTransfer).where(
                DiskTransfer.id == transfer_id, DiskTransfer.project_id == _project(actor)
            )
        )
    if found is None:
        raise TransferNotFound(id=transfer_id)
    return found


def list_offers(
    session: Session, actor: Actor, limit: int, offset: int
) -> tuple[list[DiskTransfer], int]:
    query = select(DiskTransfer).where(DiskTransfer.project_id == _project(actor))
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    page = query.order_by(DiskTransfer.created_at, DiskTransfer.id).limit(limit).offset(offset)
    return list(session.scalars(page)), total


def withdraw(session: Session, actor: Actor, transfer_id: str) -> None:
    transfer = get_offer(session, actor, transfer_id)
    disk = get_disk(session, _project(actor), transfer.volume_id, lock=True)
    transition_disk(session, disk, [DiskStatus.AWAITING_TRANSFER], DiskStatus.AVAILABLE)
    session.delete(transfer)
    session.flush()


def accept(session: Session, actor: Actor, transfer_id: str, auth_key: str) -> DiskTransfer:
    """Move the disk to the caller's project. A wrong key, an unknown transfer and another
    region's transfer all answer EVS.0406."""
    transfer = None
    if is_uuid(transfer_id):
        transfer = session.scalar(
            select(DiskTransfer).where(DiskTransfer.id == transfer_id).with_for_update()
        )
    valid = transfer is not None and hmac.compare_digest(
        transfer.auth_key_sha256, _digest(auth_key or "")
    )
    disk = session.get(Disk, transfer.volume_id, with_for_update=True) if transfer else None
    if transfer is None or not valid or disk is None or disk.region != actor.region:
        raise TransferNotFound(id=transfer_id)
    if disk.project_id == actor.project_id:
        raise TransferRefused(reason="the disk is already in this project")
    transition_disk(session, disk, [DiskStatus.AWAITING_TRANSFER], DiskStatus.AVAILABLE)
    disk.project_id, disk.user_id = _project(actor), actor.user_id
    session.execute(  # its snapshots go with it (as Cinder's transfer does by default)
        update(Snapshot).where(Snapshot.volume_id == disk.id).values(project_id=disk.project_id)
    )
    session.delete(transfer)
    session.flush()
    return transfer

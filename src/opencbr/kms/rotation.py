"""Key rotation: new material for new data, the old material kept to decrypt what it made.

A rotation (on demand, `rotate-on-demand`) moves the key's current material to its retired
materials and seals fresh material in its place; everything encrypted from then on uses the
new material, and decrypting tries the current material first, then the retired ones, newest
first (an AES-GCM tag tells which one made a cipher text). Rotation settings (enabled, an
interval of 30-365 days) are kept and reported; **automatic** rotation at the interval is not
scheduled yet (the settings say when it would be due). Only the key's owner (its project)
changes or reads them; a key must be enabled to rotate (KMS.0209 / KMS.0210 otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor
from opencbr.core.ids import new_uuid
from opencbr.core.numbers import whole_number
from opencbr.core.secrets import RootKey

from . import envelope
from .access import ensure_enabled, material_purpose, owned_key
from .errors import KmsValidationFailed
from .models import Key, KeyMaterial, KeyRotation

__all__ = [
    "MAX_INTERVAL",
    "MIN_INTERVAL",
    "RotationStatus",
    "materials",
    "rotate",
    "set_enabled",
    "set_interval",
    "status",
    "unwrap_with_any",
]

MIN_INTERVAL, MAX_INTERVAL = 30, 365


def _settings(session: Session, key: Key) -> KeyRotation:
    found = session.get(KeyRotation, key.id, with_for_update=True)
    if found is None:
        found = KeyRotation(key_id=key.id, enabled=False, interval_days=MAX_INTERVAL, rotations=0)
        session.add(found)
    return found


def set_enabled(session: Session, actor: Actor, key_id: str | None, enabled: bool) -> None:
    operation = "enable-key-rotation" if enabled else "disable-key-rotation"
    key = owned_key(session, actor, key_id, operation, lock=True)
    ensure_enabled(key, operation)
    _settings(session, key).enabled = enabled
    session.flush()


def set_interval(session: Session, actor: Actor, key_id: str | None, days: object) -> None:
    key = owned_key(session, actor, key_id, "update-key-rotation-interval", lock=True)
    ensure_enabled(key, "update-key-rotation-interval")
    number = whole_number(days) if isinstance(days, (str, int)) else None
    if number is None or not MIN_INTERVAL <= number <= MAX_INTERVAL:
        raise KmsValidationFailed(
            reason=f"rotation_interval must be {MIN_INTERVAL}-{MAX_INTERVAL} days"
        )
    _settings(session, key).interval_days = number
    session.flush()


def rotate(session: Session, root_key: RootKey, actor: Actor, key_id: str | None) -> Key:
    """Retire the key's material and give it new material, now."""
    key = owned_key(session, actor, key_id, "rotate-on-demand", lock=True)
    ensure_enabled(key, "rotate-on-demand")
    settings = _settings(session, key)
    now = utcnow()
    session.add(
        KeyMaterial(
            id=new_uuid(),
            key_id=key.id,
            material_sealed=key.material_sealed,
            created_at=settings.last_rotation_at or key.created_at,
            retired_at=now,
        )
    )
    key.material_sealed = root_key.seal(envelope.new_master_key(), material_purpose(key.id))
    settings.rotations += 1
    settings.last_rotation_at = now
    session.flush()
    return key


@dataclass(frozen=True)
class RotationStatus:
    enabled: bool
    interval_days: int
    last_rotation_at: datetime | None
    rotations: int
    materials: list[tuple[str, datetime, datetime | None]]  # id, created, retired (None: current)


def status(session: Session, actor: Actor, key_id: str | None) -> RotationStatus:
    key = owned_key(session, actor, key_id, "get-key-rotation-status")
    settings = session.get(KeyRotation, key.id)
    retired = session.scalars(
        select(KeyMaterial).where(KeyMaterial.key_id == key.id).order_by(KeyMaterial.retired_at)
    )
    current_since = (settings.last_rotation_at if settings else None) or key.created_at
    found: list[tuple[str, datetime, datetime | None]] = [
        (m.id, m.created_at, m.retired_at) for m in retired
    ]
    found.append((key.id, current_since, None))
    return RotationStatus(
        enabled=settings.enabled if settings else False,
        interval_days=settings.interval_days if settings else MAX_INTERVAL,
        last_rotation_at=settings.last_rotation_at if settings else None,
        rotations=settings.rotations if settings else 0,
        materials=found,
    )


def materials(session: Session, root_key: RootKey, key: Key) -> Iterator[bytes]:
    """The key's materials to decrypt with: the current one, then the retired ones, newest
    first (read only when the current one does not open the cipher text)."""
    purpose = material_purpose(key.id)
    yield root_key.unseal(key.material_sealed, purpose)
    retired = session.scalars(
        select(KeyMaterial.material_sealed)
        .where(KeyMaterial.key_id == key.id)
        .order_by(KeyMaterial.retired_at.desc())
    )
    for sealed in retired:
        yield root_key.unseal(sealed, purpose)


def unwrap_with_any(
    session: Session, root_key: RootKey, key: Key, wrapped: bytes, aad: str = ""
) -> bytes:
    """The data key in `wrapped`, opened by whichever of the key's materials wrapped it (a
    rotation leaves older wraps to the retired ones); `envelope.WrapFailed` if none does."""
    for material in materials(session, root_key, key):
        try:
            return envelope.unwrap(material, key.id, wrapped, aad)
        except envelope.WrapFailed:
            continue
    raise envelope.WrapFailed("no material of the key opens it")

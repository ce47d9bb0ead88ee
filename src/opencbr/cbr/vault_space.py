"""A vault's capacity: what is free, and taking and giving back space.

Capacity changes are conditional updates on the vault row (`reserve`, `release`), so they are
atomic on both databases: concurrent backups or accepts can never push `used` past `size`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, bindparam, cast, select, update
from sqlalchemy.orm import Session

from .errors import VaultCapacityInsufficient
from .models import GiB, Vault

__all__ = ["free_bytes", "has_room", "lock_vaults", "release", "reserve"]


def free_bytes(vault: Vault) -> int:
    return vault.size_bytes - vault.used_bytes


def has_room(vault: Vault, nbytes: int, *, strictly_more: bool = False) -> bool:
    """Whether `reserve` would take `nbytes` from the vault as it stands now."""
    free = free_bytes(vault)
    return free > nbytes if strictly_more else free >= nbytes


# The capacity updates of every backup, share and deletion, built once: building one took
# longer than running it. BIGINT arithmetic: INTEGER size_gb * GiB overflows 32 bits on
# PostgreSQL. RETURNING refreshes the vault in the same statement (no reload after).
_ROOM = cast(Vault.size_gb, BigInteger) * GiB - Vault.used_bytes
_TAKE = (
    update(Vault)
    .values(used_bytes=Vault.used_bytes + bindparam("nbytes"))
    .returning(Vault)
    .execution_options(synchronize_session=False, populate_existing=True)
)
_RESERVE = _TAKE.where(Vault.id == bindparam("vault_id"), bindparam("nbytes") <= _ROOM)
_RESERVE_STRICTLY_MORE = _TAKE.where(Vault.id == bindparam("vault_id"), bindparam("nbytes") < _ROOM)
_RELEASE = (
    update(Vault)
    .where(Vault.id == bindparam("vault_id"))
    .values(used_bytes=Vault.used_bytes - bindparam("nbytes"))
    .execution_options(synchronize_session=False)
)


def reserve(session: Session, vault: Vault, nbytes: int, *, strictly_more: bool = False) -> None:
    """Take `nbytes` of the vault's capacity atomically, or raise VaultCapacityInsufficient.

    `strictly_more` asks for free space *greater than* `nbytes` (accepting a share, S6).
    """
    statement = _RESERVE_STRICTLY_MORE if strictly_more else _RESERVE
    values = {"vault_id": vault.id, "nbytes": nbytes}
    if session.execute(statement, values).scalar_one_or_none() is None:
        session.refresh(vault)
        needed = nbytes + 1 if strictly_more else nbytes
        raise VaultCapacityInsufficient(
            vault_name=vault.name,
            vault_id=vault.id,
            free_mb=max(0, free_bytes(vault)) // 2**20,
            needed_mb=-(-needed // 2**20),
        )


def lock_vaults(session: Session, vault_ids: Sequence[str | None]) -> None:
    """Row-lock several vaults in id order, so that two transactions changing the same vaults'
    capacity (say, two deletes of backups shared into them) wait for each other instead of
    deadlocking."""
    ids = sorted({vault_id for vault_id in vault_ids if vault_id})
    if ids:
        session.execute(
            select(Vault.id).where(Vault.id.in_(ids)).order_by(Vault.id).with_for_update()
        )


def release(session: Session, vault_id: str, nbytes: int) -> None:
    session.execute(_RELEASE, {"vault_id": vault_id, "nbytes": nbytes})

"""The link between CBR and the chunk store: the store itself and the keys of each scope.

Deduplication scope = one encryption key (DESIGN §4): every plain backup of a region shares one
scope, every backup encrypted under a KMS key shares that key's scope. A scope's 32-byte data
key is stored only wrapped — by the KMS key (so using an encrypted backup needs the KMS
permission, which for another account means a grant, S10) or, for plain scopes, by the
server root key. The block-id key is derived from the data key, so ids are keyed per scope.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.chunkstore import ChunkStore, CorruptBlock, CorruptObject, Scope, open_store
from opencbr.core.context import Actor, Runtime
from opencbr.core.ids import new_uuid
from opencbr.kms import service as kms

from .errors import BackupDataCorrupt
from .models import StoreScope

__all__ = [
    "PLAIN_PURPOSE",
    "chunk_store",
    "derive_id_key",
    "open_scope",
    "plain_data_key",
    "scope_for",
    "store_faults",
]

PLAIN_PURPOSE = "cbr.store-scope"


def chunk_store(runtime: Runtime) -> ChunkStore:
    """The process's chunk store (one per runtime; all state lives in the backend)."""
    if runtime.chunk_store is None:
        url = runtime.settings.store_url or str(Path(runtime.settings.data_dir) / "store")
        runtime.chunk_store = open_store(url, runtime.settings)
    return runtime.chunk_store


@contextmanager
def store_faults() -> Iterator[None]:
    """The store's data faults as the catalogue's error, around a job's use of the store (the
    store's own codes stay inside it)."""
    try:
        yield
    except (CorruptBlock, CorruptObject) as fault:
        raise BackupDataCorrupt(detail=fault.message) from fault


def derive_id_key(data_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"opencbr block ids").derive(
        data_key
    )


def _create_scope(
    session: Session, runtime: Runtime, actor: Actor, region: str, kms_key_id: str
) -> StoreScope:
    data_key = os.urandom(32)
    if kms_key_id:
        wrapped = kms.wrap_data_key(session, runtime.root_key, actor, kms_key_id, data_key)
    else:
        wrapped = runtime.root_key.seal(data_key, f"{PLAIN_PURPOSE}:{region}")
    row = StoreScope(id=new_uuid(), region=region, kms_key_id=kms_key_id, wrapped_key=wrapped)
    session.add(row)
    return row


def scope_for(
    session: Session, runtime: Runtime, actor: Actor, region: str, kms_key_id: str
) -> StoreScope:
    """The scope row of (region, key), created on first use (a concurrent creator wins)."""
    query = select(StoreScope).where(
        StoreScope.region == region, StoreScope.kms_key_id == kms_key_id
    )
    row = session.scalar(query)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = _create_scope(session, runtime, actor, region, kms_key_id)
    except IntegrityError:
        row = session.scalar(query)
        assert row is not None
    return row


def open_scope(session: Session, runtime: Runtime, actor: Actor, row: StoreScope) -> Scope:
    """The usable scope: for an encrypted one `actor` needs decrypt-datakey on the key (S10)."""
    if row.kms_key_id:
        data_key = kms.unwrap_data_key(
            session, runtime.root_key, actor, row.kms_key_id, row.wrapped_key
        )
        return Scope(name=row.id, id_key=derive_id_key(data_key), data_key=data_key)
    data_key = plain_data_key(runtime, row)
    return Scope(name=row.id, id_key=derive_id_key(data_key), data_key=None)


def plain_data_key(runtime: Runtime, row: StoreScope) -> bytes:
    """A plain scope's data key (sealed by the root key; it only keys the block ids)."""
    return runtime.root_key.unseal(row.wrapped_key, f"{PLAIN_PURPOSE}:{row.region}")

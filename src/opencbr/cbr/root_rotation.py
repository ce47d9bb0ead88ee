"""Replacing the server root key: every value it seals is sealed again by the new one.

Values sealed by the root key: access-key secrets, KMS key material, plain scopes' data keys
(in the database) and the catalogue keys (in the store). A rotation keeps the new key in
``root.key.new`` while it works and renames it over ``root.key`` last; each value is opened
by the new key first and only resealed when that fails, so a rotation interrupted at any
point is finished by running it again (the old ``root.key`` is still there until the end).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from opencbr.core.context import Runtime
from opencbr.core.secrets import RootKey, SealedDataCorrupt
from opencbr.iam.models import AccessKey
from opencbr.iam.service import secret_purpose
from opencbr.kms.access import material_purpose
from opencbr.kms.models import Key, KeyMaterial

from .catalogue import CATALOGUE_KEYS
from .catalogue_keys import CatalogueKeys
from .dataplane import PLAIN_PURPOSE, chunk_store
from .errors import RecoveryRefused
from .models import StoreScope

__all__ = ["rotate_root_key"]

Sealed = tuple[object, str, str]  # row, attribute, purpose


def _sealed_values(session: Session) -> Iterator[Sealed]:
    for key in session.scalars(select(AccessKey)):
        yield key, "secret_sealed", secret_purpose(key.access_key)
    for kms_key in session.scalars(select(Key)):
        yield kms_key, "material_sealed", material_purpose(kms_key.id)
    for retired in session.scalars(select(KeyMaterial)):  # what a KMS rotation retired
        yield retired, "material_sealed", material_purpose(retired.key_id)
    for scope in session.scalars(select(StoreScope).where(StoreScope.kms_key_id == "")):
        yield scope, "wrapped_key", f"{PLAIN_PURPOSE}:{scope.region}"


def _reseal(old: RootKey, new: RootKey, sealed: bytes, purpose: str) -> bytes | None:
    """`sealed` sealed by `new`, or None when it already is."""
    try:
        new.unseal(sealed, purpose)
        return None
    except SealedDataCorrupt:
        return new.seal(old.unseal(sealed, purpose), purpose)


def _new_key_file(data_dir: Path) -> Path:
    path = data_dir / "root.key.new"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64encode(AESGCM.generate_key(256)))
            handle.flush()
            os.fsync(handle.fileno())
    return path


def rotate_root_key(runtime: Runtime, progress: Callable[[str], None] | None = None) -> int:
    """Seal everything by a new root key and make it the data directory's `root.key`;
    returns the values resealed."""
    if runtime.settings.root_key:
        raise RecoveryRefused(
            reason="the root key comes from OPENCBR_ROOT_KEY; rotation works on the data "
            "directory's root.key file only"
        )
    data_dir = Path(runtime.settings.data_dir)
    new_path = _new_key_file(data_dir)
    old, new = runtime.root_key, RootKey(base64.b64decode(new_path.read_bytes()))
    catalogue = chunk_store(runtime).catalogue
    # The store first: its catalogue keys opened by either key are sealed by the new one.
    keys = {**CatalogueKeys.opened_by(catalogue, old), **CatalogueKeys.opened_by(catalogue, new)}
    if keys:
        CatalogueKeys(keys, min(keys)).reseal(catalogue, new)
    count = 0
    with runtime.database.unit_of_work() as session:
        for row, attribute, purpose in list(_sealed_values(session)):
            resealed = _reseal(old, new, getattr(row, attribute), purpose)
            if resealed is not None:
                setattr(row, attribute, resealed)
                count += 1
    os.replace(new_path, data_dir / "root.key")
    runtime.root_key = new
    runtime.parts.pop(CATALOGUE_KEYS)
    if progress is not None:
        progress(f"{count} sealed values moved to the new root key")
    return count

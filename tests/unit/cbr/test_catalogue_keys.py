"""The catalogue's keys: records sealed to their place, opened by the root key or by the
recovery key alone; and a committed catalogue (golden) that must stay readable."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from opencbr.cbr.catalogue_keys import CatalogueKeys, RecoveryKey
from opencbr.cbr.errors import CatalogueUnreadable
from opencbr.chunkstore import Catalogue, LocalDirBackend, MemoryBackend
from opencbr.core.secrets import RootKey

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "cbr" / "catalogue"
GOLDEN_ROOT = RootKey(hashlib.sha256(b"golden root key").digest())
GOLDEN_RECOVERY = RecoveryKey(
    X25519PrivateKey.from_private_bytes(hashlib.sha256(b"golden recovery key").digest())
)
GOLDEN_RECORD = b'{"backup": {"id": "golden"}, "format": 1}'


def _root() -> RootKey:
    return RootKey(os.urandom(32))


def test_one_key_is_made_and_then_reused() -> None:
    catalogue, root = Catalogue(MemoryBackend()), _root()
    first = CatalogueKeys.for_writing(catalogue, root)
    again = CatalogueKeys.for_writing(catalogue, root)
    assert first.keys == again.keys
    assert len(catalogue.names("keys")) == 1


def test_a_record_opens_only_at_its_place_and_unaltered() -> None:
    keys = CatalogueKeys.for_writing(Catalogue(MemoryBackend()), _root())
    sealed = keys.seal("backups", "b1", b"record")
    assert keys.open("backups", "b1", sealed) == b"record"
    with pytest.raises(CatalogueUnreadable, match="failed authentication"):
        keys.open("backups", "b2", sealed)  # moved to another backup's name
    altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(CatalogueUnreadable, match="failed authentication"):
        keys.open("backups", "b1", altered)


def test_the_recovery_key_alone_opens_keys_made_before_and_after_its_export() -> None:
    catalogue, root, recovery = Catalogue(MemoryBackend()), _root(), RecoveryKey.generate()
    before = CatalogueKeys.for_writing(catalogue, root)
    before.add_recovery(catalogue, recovery.public)
    # A key made later (as by a process that found none it could open) is sealed for it too.
    other_root = _root()
    after = CatalogueKeys.for_writing(catalogue, other_root)
    assert after.keys.keys() != before.keys.keys()
    opened = CatalogueKeys.for_reading(catalogue, None, recovery)
    assert opened.keys == {**before.keys, **after.keys}
    with pytest.raises(CatalogueUnreadable):
        CatalogueKeys.for_reading(catalogue, None, RecoveryKey.generate())
    with pytest.raises(CatalogueUnreadable, match="no catalogue key"):
        CatalogueKeys.for_reading(Catalogue(MemoryBackend()), _root(), None)


def test_a_recovery_key_file_round_trips(tmp_path: Path) -> None:
    key = RecoveryKey.generate()
    key.save(tmp_path / "recovery.key")
    assert (tmp_path / "recovery.key").stat().st_mode & 0o777 == 0o600
    assert RecoveryKey.load(tmp_path / "recovery.key").public == key.public
    with pytest.raises(FileExistsError):
        key.save(tmp_path / "recovery.key")


def test_the_golden_catalogue_still_opens() -> None:
    """A committed catalogue (keys sealed by a root and a recovery key, one record): a change
    of the code must not stop it from opening with either key."""
    if os.environ.get("OPENCBR_WRITE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        catalogue = Catalogue(LocalDirBackend(GOLDEN))
        keys = CatalogueKeys.for_writing(catalogue, GOLDEN_ROOT)
        keys.add_recovery(catalogue, GOLDEN_RECOVERY.public)
        catalogue.put("backups", "golden", keys.seal("backups", "golden", GOLDEN_RECORD))
    catalogue = Catalogue(LocalDirBackend(GOLDEN))
    for keys in (
        CatalogueKeys.for_reading(catalogue, GOLDEN_ROOT, None),
        CatalogueKeys.for_reading(catalogue, None, GOLDEN_RECOVERY),
    ):
        sealed = catalogue.get("backups", "golden")
        assert sealed is not None
        assert keys.open("backups", "golden", sealed) == GOLDEN_RECORD

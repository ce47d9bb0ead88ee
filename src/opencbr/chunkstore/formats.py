"""Binary layouts of the stored objects: packs, index files and manifests.

All integers are little endian. Every object is named by the BLAKE3 (unkeyed) hex digest of its
bytes, so any damage is found by rehashing, without keys. Layouts (version 1; manifests also 2):

Pack ``packs/<2 hex>/<64 hex>``::

    "OCBRPACK" u8 version u8 0 u16 scope-name length u64 created (ms) u32 count u32 header length
    scope name (utf-8)
    count x (32-byte block id, u32 offset from the pack start, u32 blob length)
    16-byte BLAKE3 of the header bytes above
    blobs (see codec.py), in table order

The table is at the front so a pack is written in one put from a memory buffer and its table
is read with one ranged get; the index can be rebuilt from the pack tables alone.

Index file ``index/<64 hex>``::

    "OCBRINDX" u8 version 3 x u8 0 u32 pack count u32 entry count
    pack count x 32-byte pack digest
    entry count x (32-byte block id, u32 pack number, u32 offset, u32 blob length)

Manifest ``manifests/<64 hex>``::

    "OCBRMANI" u8 version u8 flags (1 = encrypted scope) u16 scope-name length
    u32 block size u64 disk size u64 created (ms) u32 block count
    scope name, 32-byte parent manifest digest (zeros: none), 16-byte data-key check,
    u32 body length, body = zstd(hole bitmap (1 bit per block, 1 = hole) || ids of non-holes
                                 [|| shift table, version 2 only])
    32-byte MAC: keyed BLAKE3 of everything above under a key derived from the scope's id key

    shift table: count x (u32 block number, u32 offset, 32-byte first id, 32-byte second id),
    block numbers ascending. The block is not stored as a blob of its own: it is bytes
    [offset, offset + block size) of the blocks `first` and `second` laid end to end (a copy
    of data that sits at another 4 KiB-aligned place of a disk; see shifts.py). Its id in the
    block list is still the keyed hash of its content, which a read checks after cutting it.
    A manifest without shifted blocks is written as version 1.

Manifests are readable without keys (garbage collection needs their block ids, and ids are
keyed hashes that reveal nothing); the MAC and the key check let a restore tell a wrong or
forged scope (`WrongKey`) from damage (`CorruptObject`).
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import NamedTuple, cast

import blake3
import zstandard

from .codec import ID_SIZE, Scope, key_check
from .errors import CorruptObject, WrongKey

__all__ = [
    "IndexFile",
    "Manifest",
    "PackEntry",
    "PackHeader",
    "Shift",
    "build_pack",
    "decode_index",
    "decode_manifest",
    "encode_index",
    "encode_manifest",
    "hole_flags",
    "object_digest",
    "pack_header_length",
    "parse_pack_header",
    "runs_of_ones",
    "stored_ids",
]

FORMAT_VERSION = 1
MANIFEST_VERSIONS = (1, 2)  # 2: with a shift table
PACK_MAGIC = b"OCBRPACK"
INDEX_MAGIC = b"OCBRINDX"
MANIFEST_MAGIC = b"OCBRMANI"
_PACK_HEAD = struct.Struct("<8sBBHQII")
_PACK_ENTRY = struct.Struct("<32sII")
_INDEX_HEAD = struct.Struct("<8sB3xII")
_INDEX_ENTRY = struct.Struct("<32sIII")
_MAN_HEAD = struct.Struct("<8sBBHIQQI")
_SHIFT_ENTRY = struct.Struct("<II32s32s")
_CHECK_SIZE = 16
_MAC_SIZE = 32
# A byte of a hole bitmap -> its eight bits as bytes of 0 or 1, lowest bit first; and flag
# bytes -> the digits of a base-2 number (a bitmap is built and read without a step per block).
_HOLE_FLAGS = tuple(bytes((byte >> bit) & 1 for bit in range(8)) for byte in range(256))
_FLAG_DIGITS = bytes.maketrans(b"\x00\x01", b"01")
_MAX_MANIFEST_BODY = 1 << 34


def object_digest(data: bytes | memoryview) -> str:
    """The content name of an object: BLAKE3 hex digest of its bytes."""
    return blake3.blake3(data).hexdigest()


# ------------------------------------------------------------------------------------ packs


@dataclass(frozen=True)
class PackEntry:
    block_id: bytes
    offset: int
    length: int


@dataclass(frozen=True)
class PackHeader:
    scope: str
    created_ms: int
    entries: tuple[PackEntry, ...]
    header_length: int


def build_pack(scope: str, created_ms: int, blobs: Sequence[tuple[bytes, bytes]]) -> bytes:
    """One pack holding `blobs` (block id, blob) in order."""
    name = scope.encode()
    header_len = _PACK_HEAD.size + len(name) + _PACK_ENTRY.size * len(blobs) + _CHECK_SIZE
    parts = [
        _PACK_HEAD.pack(
            PACK_MAGIC, FORMAT_VERSION, 0, len(name), created_ms, len(blobs), header_len
        ),
        name,
    ]
    offset = header_len
    for block_id, blob in blobs:
        parts.append(_PACK_ENTRY.pack(block_id, offset, len(blob)))
        offset += len(blob)
    head = b"".join(parts)
    return b"".join([head, blake3.blake3(head).digest()[:_CHECK_SIZE], *(b for _, b in blobs)])


def pack_header_length(prefix: bytes, name: str) -> int:
    """The header length a pack announces in its first bytes."""
    if len(prefix) < _PACK_HEAD.size:
        raise CorruptObject(name, "truncated before the pack header ends")
    magic, version, _, _, _, _, header_len = _PACK_HEAD.unpack_from(prefix)
    if magic != PACK_MAGIC or version != FORMAT_VERSION:
        raise CorruptObject(name, f"not a version {FORMAT_VERSION} pack")
    return int(header_len)


def parse_pack_header(data: bytes, name: str) -> PackHeader:
    """The table of a pack from its first `pack_header_length` bytes (or the whole pack)."""
    header_len = pack_header_length(data, name)
    _, _, _, name_len, created_ms, count, _ = _PACK_HEAD.unpack_from(data)
    table_at = _PACK_HEAD.size + name_len
    if header_len != table_at + _PACK_ENTRY.size * count + _CHECK_SIZE or len(data) < header_len:
        raise CorruptObject(name, "pack header is truncated or inconsistent")
    check_at = header_len - _CHECK_SIZE
    if blake3.blake3(data[:check_at]).digest()[:_CHECK_SIZE] != data[check_at:header_len]:
        raise CorruptObject(name, "pack header checksum mismatch")
    entries = tuple(
        PackEntry(*_PACK_ENTRY.unpack_from(data, table_at + i * _PACK_ENTRY.size))
        for i in range(count)
    )
    scope = data[_PACK_HEAD.size : table_at].decode()
    return PackHeader(scope, created_ms, entries, header_len)


# ------------------------------------------------------------------------------ index files


@dataclass(frozen=True)
class IndexFile:
    """Entries of one index file: block id -> (pack digest, offset, length)."""

    packs: tuple[str, ...]
    entries: tuple[tuple[bytes, int, int, int], ...]  # (block id, pack number, offset, length)


def encode_index(packs: Sequence[str], entries: Sequence[tuple[bytes, int, int, int]]) -> bytes:
    parts = [_INDEX_HEAD.pack(INDEX_MAGIC, FORMAT_VERSION, len(packs), len(entries))]
    parts.extend(bytes.fromhex(p) for p in packs)
    parts.extend(_INDEX_ENTRY.pack(*e) for e in sorted(entries))
    return b"".join(parts)


def decode_index(data: bytes, name: str) -> IndexFile:
    if len(data) < _INDEX_HEAD.size:
        raise CorruptObject(name, "index file is truncated")
    magic, version, npacks, nentries = _INDEX_HEAD.unpack_from(data)
    if magic != INDEX_MAGIC or version != FORMAT_VERSION:
        raise CorruptObject(name, f"not a version {FORMAT_VERSION} index file")
    at = _INDEX_HEAD.size
    if len(data) != at + npacks * ID_SIZE + nentries * _INDEX_ENTRY.size:
        raise CorruptObject(name, "index file length does not match its counts")
    packs = tuple(data[at + i * ID_SIZE : at + (i + 1) * ID_SIZE].hex() for i in range(npacks))
    at += npacks * ID_SIZE
    entries = tuple(_INDEX_ENTRY.iter_unpack(data[at:]))
    if entries and max(map(operator.itemgetter(1), entries)) >= npacks:
        raise CorruptObject(name, "index entry names a pack number out of range")
    return IndexFile(packs, entries)


# -------------------------------------------------------------------------------- manifests


class Shift(NamedTuple):
    """A block cut from two stored blocks: bytes [offset, offset + block size) of
    ``first || second``."""

    first: bytes
    offset: int
    second: bytes


@dataclass(frozen=True)
class Manifest:
    """A backup of one disk: its size, block size and the ordered block ids (None = hole).

    `shifted` maps the numbers of blocks stored as a `Shift` to it; every other non-hole
    block is a blob of its own, found in the index under its id.
    """

    manifest_id: str
    scope: str
    encrypted: bool
    disk_size: int
    block_size: int
    created_ms: int
    parent: str | None
    blocks: tuple[bytes | None, ...] = field(repr=False)
    data_key_check: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    signed: bytes = field(repr=False)
    shifted: Mapping[int, Shift] = field(default_factory=dict, repr=False)

    def stored_ids(self) -> set[bytes]:
        """The ids of the blobs this manifest needs (see `stored_ids`)."""
        return stored_ids(self.blocks, self.shifted)

    def check_scope(self, scope: Scope) -> None:
        """Raise `WrongKey` unless `scope` is the one this manifest was written with."""
        what = f"manifest {self.manifest_id}"
        if scope.name != self.scope:
            raise WrongKey(what, f"written in scope {self.scope!r}, opened with {scope.name!r}")
        if scope.encrypted != self.encrypted or key_check(scope.data_key) != self.data_key_check:
            raise WrongKey(what, f"the data key of scope {scope.name!r} is not the one used")
        if blake3.blake3(self.signed, key=manifest_mac_key(scope)).digest() != self.mac:
            raise WrongKey(what, f"the id key of scope {scope.name!r} does not authenticate it")


def hole_flags(blocks: Sequence[bytes | None]) -> bytes:
    """One byte per block: 1 for a hole, 0 for a block with an id."""
    return bytes(map(operator.is_, repeat(None), blocks))


def runs_of_ones(flags: bytes | bytearray) -> list[tuple[int, int]]:
    """The [start, end) runs of 1 in a sequence of 0 and 1 bytes (one flag per block): a
    per-block loop costs about a microsecond a block, and disks have tens of thousands."""
    runs, i, n = [], 0, len(flags)
    while i < n:
        start = flags.find(1, i)
        if start < 0:
            break
        end = flags.find(0, start)
        end = n if end < 0 else end
        runs.append((start, end))
        i = end
    return runs


def stored_ids(blocks: Sequence[bytes | None], shifted: Mapping[int, Shift]) -> set[bytes]:
    """The ids of the blobs a block list needs: its blocks, except those only ever shifted,
    and the blocks the shifted ones are cut from."""
    if not shifted:
        ids = set(blocks)
    else:
        plain = list(blocks)
        for i in shifted:
            plain[i] = None
        ids = set(plain)
        for shift in shifted.values():
            ids.update((shift.first, shift.second))
    ids.discard(None)
    return cast(set[bytes], ids)


def manifest_mac_key(scope: Scope) -> bytes:
    return blake3.blake3(b"opencbr/manifest-mac/v1", key=scope.id_key).digest()


def encode_manifest(
    scope: Scope,
    disk_size: int,
    block_size: int,
    created_ms: int,
    parent: str | None,
    blocks: Sequence[bytes | None],
    shifted: Mapping[int, Shift] | None = None,
) -> bytes:
    name = scope.name.encode()
    holes = hole_flags(blocks)
    bits = int(holes[::-1].translate(_FLAG_DIGITS), 2) if holes else 0  # block 0 lowest
    bitmap = bits.to_bytes((len(blocks) + 7) // 8, "little")
    ids = b"".join(filter(None, blocks))
    table = b"".join(
        _SHIFT_ENTRY.pack(i, s.offset, s.first, s.second)
        for i, s in sorted((shifted or {}).items())
    )
    body = zstandard.ZstdCompressor(level=3).compress(bitmap + ids + table)
    head = _MAN_HEAD.pack(
        MANIFEST_MAGIC,
        2 if table else 1,
        int(scope.encrypted),
        len(name),
        block_size,
        disk_size,
        created_ms,
        len(blocks),
    )
    parent_raw = bytes.fromhex(parent) if parent else bytes(ID_SIZE)
    signed = b"".join(
        [head, name, parent_raw, key_check(scope.data_key), struct.pack("<I", len(body)), body]
    )
    return signed + blake3.blake3(signed, key=manifest_mac_key(scope)).digest()


def decode_manifest(data: bytes, manifest_id: str) -> Manifest:
    """Parse a manifest; the caller has checked that `data` hashes to `manifest_id`."""
    try:
        return _decode_manifest(data, manifest_id)
    except (struct.error, zstandard.ZstdError, UnicodeDecodeError) as exc:
        raise CorruptObject(f"manifests/{manifest_id}", f"unreadable manifest: {exc}") from None


def _decode_manifest(data: bytes, manifest_id: str) -> Manifest:
    magic, version, flags, name_len, block_size, disk_size, created_ms, count = (
        _MAN_HEAD.unpack_from(data)
    )
    if magic != MANIFEST_MAGIC or version not in MANIFEST_VERSIONS:
        raise CorruptObject(f"manifests/{manifest_id}", "not a version 1 or 2 manifest")
    at = _MAN_HEAD.size
    scope = data[at : at + name_len].decode()
    at += name_len
    parent_raw = data[at : at + ID_SIZE]
    check = data[at + ID_SIZE : at + ID_SIZE + _CHECK_SIZE]
    at += ID_SIZE + _CHECK_SIZE
    (body_len,) = struct.unpack_from("<I", data, at)
    at += 4
    body = zstandard.ZstdDecompressor().decompress(
        data[at : at + body_len], max_output_size=_MAX_MANIFEST_BODY
    )
    if len(data) != at + body_len + _MAC_SIZE:
        raise CorruptObject(f"manifests/{manifest_id}", "manifest length is inconsistent")
    blocks, table = _unpack_blocks(body, count, manifest_id)
    if table and version < 2:
        raise CorruptObject(f"manifests/{manifest_id}", "block list does not match its count")
    shifted = _unpack_shifts(table, blocks, disk_size, block_size, manifest_id)
    return Manifest(
        manifest_id=manifest_id,
        scope=scope,
        encrypted=bool(flags & 1),
        disk_size=disk_size,
        block_size=block_size,
        created_ms=created_ms,
        parent=parent_raw.hex() if any(parent_raw) else None,
        blocks=blocks,
        data_key_check=check,
        mac=data[-_MAC_SIZE:],
        signed=data[:-_MAC_SIZE],
        shifted=shifted,
    )


def _unpack_blocks(
    body: bytes, count: int, manifest_id: str
) -> tuple[tuple[bytes | None, ...], bytes]:
    """The block list and what follows it (the shift table)."""
    bitmap_len = (count + 7) // 8
    bitmap = body[:bitmap_len]
    holes = b"".join(map(_HOLE_FLAGS.__getitem__, bitmap))[:count]
    ids_end = bitmap_len + holes.count(0) * ID_SIZE
    if len(bitmap) != bitmap_len or len(body) < ids_end:
        raise CorruptObject(f"manifests/{manifest_id}", "block list does not match its count")
    ids = [body[at : at + ID_SIZE] for at in range(bitmap_len, ids_end, ID_SIZE)]
    blocks: list[bytes | None] = []
    taken = 0  # ids placed so far
    for start, end in runs_of_ones(holes):
        more = start - len(blocks)  # blocks with ids before this run of holes
        blocks += ids[taken : taken + more]
        blocks += [None] * (end - start)
        taken += more
    blocks += ids[taken:]
    return tuple(blocks), body[ids_end:]


def _unpack_shifts(
    table: bytes,
    blocks: tuple[bytes | None, ...],
    disk_size: int,
    block_size: int,
    manifest_id: str,
) -> dict[int, Shift]:
    if len(table) % _SHIFT_ENTRY.size:
        raise CorruptObject(f"manifests/{manifest_id}", "shift table is truncated")
    whole_blocks = disk_size // block_size
    shifted: dict[int, Shift] = {}
    last = -1
    for number, offset, first, second in _SHIFT_ENTRY.iter_unpack(table):
        if not (last < number < whole_blocks and blocks[number] and 0 < offset < block_size):
            raise CorruptObject(
                f"manifests/{manifest_id}", f"shift table entry for block {number} is invalid"
            )
        shifted[number] = Shift(first, offset, second)
        last = number
    return shifted

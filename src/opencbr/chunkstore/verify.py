"""Checking a store: one manifest's blocks, or every object.

Verification collects every problem it finds (as the errors a read would raise) instead of
stopping at the first, so one run tells an operator everything that is damaged.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .catalogue import CATALOGUE_PREFIX
from .codec import BlockCodec
from .errors import ChunkStoreError, CorruptBlock, CorruptObject, MissingObject, UnknownBlock
from .formats import Manifest, PackHeader, object_digest, parse_pack_header
from .index import (
    INDEX_PREFIX,
    Location,
    list_packs,
    load_index_file,
    pack_object,
    read_pack_header,
)
from .parts import StoreParts
from .restore import BlobRead, cut_shifted, decode_block, get_blobs, plan_reads, shifted_groups

__all__ = ["VerifyReport", "verify_manifest", "verify_store"]


@dataclass
class VerifyReport:
    """The outcome of a verification: `ok` when `errors` is empty."""

    errors: list[ChunkStoreError] = field(default_factory=list)
    manifests: int = 0
    packs: int = 0
    blocks: int = 0  # blocks decoded and hashed
    bytes_read: int = 0
    unindexed_packs: list[str] = field(default_factory=list)  # harmless; gc removes them
    # manifest id -> the damaged or missing packs (or other objects) it needs
    damaged: dict[str, set[str]] = field(default_factory=dict)
    catalogue_objects: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_first(self) -> None:
        if self.errors:
            raise self.errors[0]


def _check_read(
    store: StoreParts, codec: BlockCodec, read: BlobRead, manifest_id: str
) -> tuple[int, list[ChunkStoreError]]:
    errors: list[ChunkStoreError] = []
    first = read.blobs[0][0]
    try:
        data = memoryview(
            get_blobs(store.backend, read.pack, read.start, read.length, first, manifest_id)
        )
    except ChunkStoreError as exc:
        return 0, [exc]
    for block_id, offset, length in read.blobs:
        at = offset - read.start
        try:
            decode_block(codec, block_id, data[at : at + length], manifest_id, read.pack)
        except CorruptBlock as exc:
            errors.append(exc)
    return len(read.blobs), errors


def verify_manifest(
    store: StoreParts, codec: BlockCodec, manifest: Manifest, index: dict[bytes, Location]
) -> VerifyReport:
    report = VerifyReport(manifests=1)
    found: dict[bytes, Location] = {}
    for block_id in manifest.stored_ids():
        loc = index.get(block_id)
        if loc is None:
            report.errors.append(UnknownBlock(block_id, manifest_id=manifest.manifest_id))
        else:
            found[block_id] = loc
    reads = plan_reads(found)
    report.packs = len({r.pack for r in reads})
    with ThreadPoolExecutor(store.workers, "chunkstore-verify") as pool:
        for blocks, errors in pool.map(
            lambda r: _check_read(store, codec, r, manifest.manifest_id), reads
        ):
            report.blocks += blocks
            report.errors.extend(errors)
        if not report.errors:  # cutting needs every block the shifts name
            for errors in pool.map(
                lambda g: _check_shifted(store, codec, manifest, found, g), shifted_groups(manifest)
            ):
                report.errors.extend(errors)
    report.bytes_read = sum(r.length for r in reads)
    return report


def _check_shifted(
    store: StoreParts,
    codec: BlockCodec,
    manifest: Manifest,
    locations: dict[bytes, Location],
    numbers: list[int],
) -> list[ChunkStoreError]:
    """Shifted blocks cut from their blocks match their ids (the blocks were checked)."""
    try:
        cut_shifted(store, codec, manifest, locations, numbers)
    except ChunkStoreError as exc:
        return [exc]
    return []


def _load_indexes(store: StoreParts, report: VerifyReport) -> dict[str, dict[bytes, Location]]:
    """pack -> {block id: location} from every readable index file."""
    by_pack: dict[str, dict[bytes, Location]] = defaultdict(dict)
    for name in sorted(store.backend.list(INDEX_PREFIX)):
        try:
            index = load_index_file(store.backend, name)
        except ChunkStoreError as exc:
            report.errors.append(exc)
            continue
        for block_id, number, offset, length in index.entries:
            pack = index.packs[number]
            by_pack[pack][block_id] = Location(pack, offset, length)
    return by_pack


def _check_pack(
    store: StoreParts,
    codecs: dict[str, BlockCodec],
    digest: str,
    indexed: dict[bytes, Location],
    read_data: bool,
) -> tuple[int, int, list[ChunkStoreError]]:
    """(blocks decoded, bytes read, errors) for one pack."""
    name = pack_object(digest)
    errors: list[ChunkStoreError] = []
    try:
        if not read_data:
            header = read_pack_header(store.backend, digest)
            return 0, header.header_length, _check_end(store, name, header, indexed)
        data = store.backend.get(name)
        if object_digest(data) != digest:  # go on: the blob checks below name the block
            errors.append(CorruptObject(name, "content does not match its name"))
        header = parse_pack_header(data, name)
    except ChunkStoreError as exc:
        return 0, 0, [*errors, exc]
    errors += _compare_table(name, header, indexed)
    codec = codecs.get(header.scope)
    if codec is None:
        return 0, len(data), errors
    view = memoryview(data)
    for entry in header.entries:
        try:
            codec.decode(entry.block_id, view[entry.offset : entry.offset + entry.length])
        except CorruptBlock as exc:
            errors.append(CorruptBlock(entry.block_id, exc.detail, pack=digest))
    return len(header.entries), len(data), errors


def _check_end(
    store: StoreParts, name: str, header: PackHeader, indexed: dict[bytes, Location]
) -> list[ChunkStoreError]:
    """The table against the index, and the pack's last blob's last byte is there (a read of
    one byte finds a truncated pack without reading the data)."""
    errors = _compare_table(name, header, indexed)
    if header.entries:
        end = max(e.offset + e.length for e in header.entries)
        if len(store.backend.get(name, end - 1, 1)) != 1:
            errors.append(CorruptObject(name, f"truncated: shorter than {end} bytes"))
    return errors


def _compare_table(
    name: str, header: PackHeader, indexed: dict[bytes, Location]
) -> list[ChunkStoreError]:
    table = {e.block_id: (e.offset, e.length) for e in header.entries}
    for block_id, loc in indexed.items():
        if table.get(block_id) != (loc.offset, loc.length):
            return [
                CorruptObject(
                    name, f"index entry for block {block_id.hex()} does not match the pack table"
                )
            ]
    return []


def _bad_blocks(
    by_pack: dict[str, dict[bytes, Location]], errors: list[ChunkStoreError]
) -> dict[bytes, str]:
    """block id -> the damaged object holding it: a corrupt block names itself; a pack that
    could not be read whole (missing, truncated, unreadable table) loses every block in it."""
    bad: dict[bytes, str] = {}
    for error in errors:
        if isinstance(error, CorruptBlock) and error.pack:
            bad[error.block_id] = pack_object(error.pack)
        elif isinstance(error, MissingObject | CorruptObject) and error.name.startswith("packs/"):
            digest = error.name.rsplit("/", 1)[-1]
            if isinstance(error, CorruptObject) and "does not match its name" in error.detail:
                continue  # the blob checks name the damaged blocks, if any
            for block_id in by_pack.get(digest, {}):
                bad.setdefault(block_id, error.name)
    return bad


def _check_manifests(
    store: StoreParts,
    codecs: dict[str, BlockCodec],
    known: set[bytes],
    bad: dict[bytes, str],
    report: VerifyReport,
) -> None:
    for manifest_id in store.list_manifests():
        report.manifests += 1
        try:
            manifest = store.load_manifest(manifest_id)
            codec = codecs.get(manifest.scope)
            if codec is not None:
                manifest.check_scope(codec.scope)
        except ChunkStoreError as exc:
            report.errors.append(exc)
            report.damaged.setdefault(manifest_id, set()).add(f"manifests/{manifest_id}")
            continue
        for block_id in manifest.stored_ids():
            where = bad.get(block_id)
            if where is not None:
                report.damaged.setdefault(manifest_id, set()).add(where)
            elif block_id not in known:
                report.errors.append(UnknownBlock(block_id, manifest_id=manifest_id))
                report.damaged.setdefault(manifest_id, set()).add(f"block {block_id.hex()}")


def verify_store(
    store: StoreParts, codecs: dict[str, BlockCodec], *, read_data: bool
) -> VerifyReport:
    report = VerifyReport()
    by_pack = _load_indexes(store, report)
    present = list_packs(store.backend)
    for pack in sorted(by_pack.keys() - present):
        report.errors.append(
            MissingObject(pack_object(pack), f"indexed for {len(by_pack[pack])} blocks")
        )
    report.unindexed_packs = sorted(present - by_pack.keys())
    with ThreadPoolExecutor(store.workers, "chunkstore-verify") as pool:
        results = pool.map(
            lambda d: _check_pack(store, codecs, d, by_pack.get(d, {}), read_data), sorted(present)
        )
        for blocks, nbytes, errors in results:
            report.packs += 1
            report.blocks += blocks
            report.bytes_read += nbytes
            report.errors.extend(errors)
    known = {block_id for pack in by_pack.keys() & present for block_id in by_pack[pack]}
    _check_manifests(store, codecs, known, _bad_blocks(by_pack, report.errors), report)
    report.catalogue_objects = sum(1 for _ in store.backend.list(CATALOGUE_PREFIX))
    report.errors.extend(store.catalogue.check())
    return report

"""One backup of an external disk through NBD in a process of its own, timed by
external_bench.py (so its time includes start-up, like restic's); prints the result as JSON.

It makes the calls the backup engine makes for a disk (`cbr/jobs/backup.py: _store_all`): a view
from the NBD volume, its changed extents when there is a parent whose read record the bitmap
still covers (else every allocated extent), `ChunkStore.backup` reading through the view.

    python bench/external_op.py STORE URI [--bitmap B] [--parent ID --previous RECORD.json]
                                [--record OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from opencbr_op import bench_scope  # bench/opencbr_op.py: the same scope as the file benchmark

from opencbr.chunkstore import ChunkStore, LocalDirBackend, keep_freed_buffers
from opencbr.evs.volumes.nbd_source import NbdSource, NbdVolume, ReadRecord


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("uri")
    parser.add_argument("--bitmap", default="")
    parser.add_argument("--parent")
    parser.add_argument("--previous", type=Path, help="the parent's read record (JSON)")
    parser.add_argument("--record", type=Path, help="write this backup's read record here")
    args = parser.parse_args()
    keep_freed_buffers()
    previous = None
    if args.previous:
        saved = json.loads(args.previous.read_text())
        previous = ReadRecord(saved["bitmap"], [tuple(e) for e in saved["marked"]], True)
    store = ChunkStore(LocalDirBackend(args.store))
    read = 0
    with NbdVolume("bench", NbdSource(args.uri, args.bitmap), previous).begin_backup() as view:

        def read_at(offset: int, length: int) -> bytes:
            nonlocal read
            read += length
            return view.read_at(offset, length)

        extents = view.changed_extents() if args.parent else None
        result = store.backup(
            bench_scope(),
            read_at,
            view.size,
            parent=args.parent,
            changed_extents=extents,
            data_extents=None if extents is not None else view.allocated_extents(),
        )
        record = view.record
        view.commit()
    if args.record:
        args.record.write_text(json.dumps({"bitmap": record.bitmap, "marked": record.marked}))
    print(
        json.dumps(
            {
                **result.__dict__,
                "nbd_read_bytes": read,
                "mode": record.mode,
                "reason": record.reason,
            }
        )
    )


if __name__ == "__main__":
    main()

"""One OpenCBR chunk-store operation in a process of its own, timed by backup_bench.py (so its
time includes start-up, like restic's and borg's, and its peak RSS is its own); prints the
result as JSON. It imports only what the operation needs.

    python bench/opencbr_op.py backup STORE IMAGE [--parent ID] [--extents FILE] [--workers N]
    python bench/opencbr_op.py restore STORE MANIFEST_ID TARGET
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from opencbr.chunkstore import ChunkStore, LocalDirBackend, Scope, keep_freed_buffers


def bench_scope() -> Scope:
    return Scope(
        "bench",
        hashlib.sha256(b"bench id key").digest(),
        hashlib.sha256(b"bench data key").digest(),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["backup", "restore"])
    parser.add_argument("store")
    parser.add_argument("source")
    parser.add_argument("target", nargs="?")
    parser.add_argument("--parent")
    parser.add_argument("--extents")
    parser.add_argument("--block-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--zstd-level", type=int, default=None)
    args = parser.parse_args()
    keep_freed_buffers()  # as in a process that runs jobs (`opencbr worker`, `opencbr serve`)
    kwargs: dict[str, int] = {"block_size": args.block_size} if args.block_size else {}
    if args.zstd_level is not None:
        kwargs["zstd_level"] = args.zstd_level
    store = ChunkStore(LocalDirBackend(args.store), workers=args.workers, **kwargs)
    if args.what == "restore":
        result: Any = store.restore(bench_scope(), args.source, args.target)
    else:
        extents = json.loads(Path(args.extents).read_text()) if args.extents else None
        with open(args.source, "rb") as f:
            result = store.backup(
                bench_scope(),
                f,
                os.fstat(f.fileno()).st_size,
                parent=args.parent,
                changed_extents=extents,
            )
    print(json.dumps(result.__dict__))


if __name__ == "__main__":
    main()

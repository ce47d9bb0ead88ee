"""Machine limits and the thread-versus-process measurement for backup_bench.py.

The per-block work of a backup (keyed BLAKE3, zstd, AES-GCM) runs in C and releases the GIL,
so threads should scale; a process pool avoids the GIL entirely but pays for moving blocks and
blobs between processes. `pool_comparison` measures both on the same sample, with the process
variant in its most favourable form (workers read the image themselves; only the resulting
blobs travel back).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from opencbr.chunkstore import DEFAULT_BLOCK_SIZE, Scope
from opencbr.chunkstore.codec import DEFAULT_ZSTD_LEVEL, BlockCodec

MiB = 1 << 20
SAMPLE = 512 * MiB
BATCH = 4 * MiB
_SCOPE = Scope("limits", b"i" * 32, b"d" * 32)


def sample_blocks(image: Path, limit: int = SAMPLE) -> list[bytes]:
    """Non-zero blocks from the start of the image, up to `limit` bytes."""
    blocks, zero, total = [], bytes(DEFAULT_BLOCK_SIZE), 0
    with open(image, "rb", buffering=0) as f:
        while total < limit and (block := f.read(DEFAULT_BLOCK_SIZE)):
            if block != zero:
                blocks.append(block)
                total += len(block)
    return blocks


def rate(fn: Callable[[bytes], Any], blocks: list[bytes]) -> float:
    started = time.perf_counter()
    for block in blocks:
        fn(block)
    return sum(map(len, blocks)) / (time.perf_counter() - started) / 1e6


def machine_limits(image: Path, page_cache_mbps: float) -> dict[str, float]:
    blocks = sample_blocks(image, 256 * MiB)
    key = b"k" * 32
    compressor = zstandard.ZstdCompressor(level=DEFAULT_ZSTD_LEVEL)
    aead = AESGCM(key)
    nonce = b"n" * 12
    return {
        "page cache read MB/s": page_cache_mbps,
        "BLAKE3 keyed, 1 thread MB/s": rate(lambda b: blake3.blake3(b, key=key).digest(), blocks),
        f"zstd level {DEFAULT_ZSTD_LEVEL}, 1 thread MB/s": rate(compressor.compress, blocks),
        "AES-256-GCM, 1 thread MB/s": rate(lambda b: aead.encrypt(nonce, b, None), blocks),
        "cores": float(os.cpu_count() or 1),
    }


def _encode_batch(codec: BlockCodec, data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for at in range(0, len(data), DEFAULT_BLOCK_SIZE):
        chunk = data[at : at + DEFAULT_BLOCK_SIZE]
        block_id = codec.block_id(chunk)
        out.append((block_id, codec.encode(block_id, chunk)))
    return out


_WORKER_CODEC: BlockCodec | None = None


def _init_worker() -> None:
    global _WORKER_CODEC
    _WORKER_CODEC = BlockCodec(_SCOPE)


def _process_batch(args: tuple[str, int, int]) -> list[tuple[bytes, bytes]]:
    path, offset, length = args
    with open(path, "rb", buffering=0) as f:
        data = os.pread(f.fileno(), length, offset)
    assert _WORKER_CODEC is not None
    return _encode_batch(_WORKER_CODEC, data)


def _process_shipped(data: bytes) -> list[tuple[bytes, bytes]]:
    assert _WORKER_CODEC is not None
    return _encode_batch(_WORKER_CODEC, data)


def _read(args: tuple[str, int, int]) -> bytes:
    path, offset, length = args
    with open(path, "rb", buffering=0) as f:
        return os.pread(f.fileno(), length, offset)


def pool_comparison(image: Path, workers: int = 0) -> dict[str, float]:
    """MB/s of the block pipeline over the first SAMPLE bytes: threads vs processes."""
    workers = workers or os.cpu_count() or 2
    size = min(SAMPLE, image.stat().st_size)
    batches = [(str(image), off, min(BATCH, size - off)) for off in range(0, size, BATCH)]
    codec = BlockCodec(_SCOPE)

    def thread_batch(args: tuple[str, int, int]) -> list[tuple[bytes, bytes]]:
        path, offset, length = args
        with open(path, "rb", buffering=0) as f:
            return _encode_batch(codec, os.pread(f.fileno(), length, offset))

    results = {}
    pools: list[tuple[str, Callable[[], Executor], Callable[..., Any]]] = [
        ("1 thread", lambda: ThreadPoolExecutor(1), thread_batch),
        (f"{workers} threads", lambda: ThreadPoolExecutor(workers), thread_batch),
        (
            f"{workers} processes reading the image",
            lambda: ProcessPoolExecutor(workers, initializer=_init_worker),
            _process_batch,
        ),
    ]
    for name, make, fn in pools:
        with make() as pool:
            list(pool.map(fn, batches[:2]))  # start the workers before timing
            started = time.perf_counter()
            list(pool.map(fn, batches))
            results[name] = size / (time.perf_counter() - started) / 1e6
    # the engine's reader may be any callable (a volume's read_at), which cannot be sent to
    # another process: the data itself then travels to the workers
    with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
        list(pool.map(_process_shipped, map(_read, batches[:2])))
        started = time.perf_counter()
        list(pool.map(_process_shipped, map(_read, batches)))
        results[f"{workers} processes, data sent"] = size / (time.perf_counter() - started) / 1e6
    return results

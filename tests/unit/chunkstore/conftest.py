"""Fixtures for the chunk store: in-memory stores with small blocks, keys, a fault injector."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from opencbr.chunkstore import Backend, ChunkStore, MemoryBackend, Scope

BLOCK = 4096


def make_scope(name: str = "scope-a", *, encrypted: bool = True, seed: int = 1) -> Scope:
    rng = random.Random(seed)
    id_key = rng.randbytes(32)
    return Scope(name, id_key, rng.randbytes(32) if encrypted else None)


class FakeClock:
    """A settable clock, so lock ages and grace periods are decided by the test."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FaultyBackend:
    """Wraps a backend and fails chosen calls: ``fail_put`` decides per object name;
    ``before_get`` runs before each read (to change the store under a reader); ``ghosts`` are
    names still listed after their deletion, as an object store's lagging listing does."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.fail_put: Callable[[str], bool] = lambda name: False
        self.before_get: Callable[[str], None] = lambda name: None
        self.ghosts: set[str] = set()
        self.puts: list[str] = []

    def put(self, name: str, data: bytes) -> None:
        if self.fail_put(name):
            raise OSError(f"injected failure writing {name}")
        self.puts.append(name)
        self.inner.put(name, data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self.before_get(name)
        return self.inner.get(name, offset, length)

    def list(self, prefix: str) -> Iterator[str]:
        names = set(self.inner.list(prefix)) | {g for g in self.ghosts if g.startswith(prefix)}
        return iter(sorted(names))

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)


def make_store(backend: Backend | None = None, **kwargs: object) -> ChunkStore:
    params: dict[str, object] = {
        "block_size": BLOCK,
        "pack_size": 64 * 1024,
        "workers": 2,
        "batch_bytes": 8 * BLOCK,
    }
    params.update(kwargs)
    return ChunkStore(backend or MemoryBackend(), **params)  # type: ignore[arg-type]


def image(seed: int, blocks: int = 64, block: int = BLOCK) -> bytearray:
    """A test image: random, text-like, zero and duplicated blocks, deterministic in `seed`."""
    rng = random.Random(seed)
    out = bytearray()
    for i in range(blocks):
        kind = rng.choice("rtzd")
        if kind == "r":
            out += rng.randbytes(block)
        elif kind == "t":
            out += (b"line %d of a log; " % rng.randrange(50) * block)[:block]
        elif kind == "z" or i == 0:
            out += bytes(block)
        else:
            start = rng.randrange(i) * block
            out += out[start : start + block]
    return out


def reader(data: bytes | bytearray) -> Callable[[int, int], bytes]:
    view = bytes(data)
    return lambda offset, length: view[offset : offset + length]


def restored(store: ChunkStore, scope: Scope, manifest_id: str, size: int) -> bytes:
    target = bytearray(b"\xee" * size)  # not zeros: holes must be written by zero_holes

    def write_at(offset: int, data: bytes) -> None:
        target[offset : offset + len(data)] = data

    store.restore_into(scope, manifest_id, write_at)
    return bytes(target)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def scope() -> Scope:
    return make_scope()


@pytest.fixture
def store(clock: FakeClock) -> ChunkStore:
    return make_store(clock=clock)

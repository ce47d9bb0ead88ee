"""The pool that write requests gather their body in: buffers come back and are lent again,
and no more than `kept` wait between requests."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from opencbr.evs.body_buffers import BufferPool


def test_a_returned_buffer_is_lent_again() -> None:
    pool = BufferPool(4096)
    with pool.lend() as first:
        first[:3] = b"abc"
        assert len(first) == 4096
    with pool.lend() as second:
        assert second.obj is first.obj  # the same bytearray, already mapped
        assert bytes(second[:3]) == b"abc"  # lent as it was left: callers fill before use


def test_buffers_lent_at_once_are_distinct_and_at_most_kept_come_back() -> None:
    pool = BufferPool(512, kept=2)
    with ExitStack() as stack:
        lent = [stack.enter_context(pool.lend()) for _ in range(3)]
        assert len({id(view.obj) for view in lent}) == 3
        assert pool.idle() == 0
    assert pool.idle() == 2


def test_a_buffer_comes_back_when_the_block_fails() -> None:
    pool = BufferPool(512)
    with pytest.raises(RuntimeError), pool.lend():
        raise RuntimeError("write failed")
    assert pool.idle() == 1

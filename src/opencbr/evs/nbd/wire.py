"""The control protocol between nbdkit's Python plugin and the OpenCBR process that owns the
volumes (the broker). Standard library only: the plugin loads this file by path inside
nbdkit's own interpreter, where the rest of OpenCBR is not importable.

One control connection carries one request at a time; the plugin keeps a pool of them so that
nbdkit's parallel threads each have one. Every frame is a fixed header and then ``length``
bytes of payload:

    request   op u8, 3 zero bytes, handle u32, offset u64, length u64  (24 bytes)
    reply     errno u32, 4 zero bytes, length u64                      (16 bytes)

``OPEN`` carries a JSON object ``{"name", "readonly"}`` and answers one (see ``Opened``);
``READ`` answers ``length`` plaintext bytes; ``WRITE`` carries them; ``ZERO``, ``FLUSH`` and
``CLOSE`` carry nothing. ``WATCH`` answers only when the export dies (its record is deleted,
the disk is gone or the process stops): the plugin then refuses every further request of the
handle, also those it would serve from the image itself. A non-zero errno is sent back to
the NBD client as is (``EIO``, ``EROFS``, ``ENOENT`` ...).
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

__all__ = [
    "CLOSE",
    "FLUSH",
    "OPEN",
    "READ",
    "REPLY",
    "REQUEST",
    "WATCH",
    "WRITE",
    "ZERO",
    "decode_json",
    "encode_json",
    "recv_exact",
    "recv_into_exact",
]

OPEN, READ, WRITE, ZERO, FLUSH, CLOSE, WATCH = range(1, 8)
REQUEST = struct.Struct("<B3xIQQ")
REPLY = struct.Struct("<I4xQ")


def recv_exact(sock: socket.socket, length: int) -> bytes:
    """Exactly `length` bytes; ConnectionError when the peer closes first."""
    buffer = bytearray(length)
    recv_into_exact(sock, memoryview(buffer))
    return bytes(buffer)


def recv_into_exact(sock: socket.socket, view: memoryview) -> None:
    received = 0
    while received < len(view):
        count = sock.recv_into(view[received:])
        if count == 0:
            raise ConnectionError("control connection closed")
        received += count


def encode_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def decode_json(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("a JSON object was expected")
    return value

"""Identifier formats: UUIDs for resources, 32 lower-case hex for domains and projects."""

from __future__ import annotations

import random
import re
import uuid

__all__ = ["HEX32_PATTERN", "is_hex32", "is_uuid", "new_hex32", "new_request_id", "new_uuid"]

# Used with fullmatch only: "^...$" with match() also takes a trailing newline ("$" matches
# before one), so "<uuid>\n" would pass as an id.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEX32_PATTERN = "[0-9a-f]{32}"  # also a form field's `pattern`, which browsers anchor
_HEX32 = re.compile(HEX32_PATTERN)


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_request_id() -> str:
    """A UUID naming one request, from Python's own generator: `os.urandom` (behind `uuid4`)
    lets go of the GIL for its system call, and the event loop, which names each request,
    then waits for the request threads to hand it back. Nothing is kept secret by it."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def new_hex32() -> str:
    return uuid.uuid4().hex


def is_uuid(value: str) -> bool:
    return bool(_UUID.fullmatch(value))


def is_hex32(value: str) -> bool:
    return bool(_HEX32.fullmatch(value))

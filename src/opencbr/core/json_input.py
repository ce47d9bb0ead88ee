"""What a JSON request body must be before anything parses it.

Python's `json` module reads `"\\ud800"` (and, with `surrogatepass`, the raw bytes of a
surrogate) as a lone surrogate: a `str` that cannot be encoded as UTF-8, so it fails wherever
it is written next (an error message, a response, a column) and, once stored, fails every read
of it. And it parses nested arrays and objects by recursion, so a deep enough body raises
`RecursionError`. Both are refused here, on the raw bytes, before any parser sees them.
"""

from __future__ import annotations

import email.message
import itertools
import json
import re
from array import array

__all__ = ["MAX_JSON_DEPTH", "is_json_content_type", "json_body_problem"]

MAX_JSON_DEPTH = 64
"""Arrays and objects nested deeper than this are refused."""

_ENCODINGS = frozenset({"utf-8", "utf-8-sig"})
_ENCODED_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")  # UTF-8 never holds these bytes
_MAY_ESCAPE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENERS = (b"[", b"{")
# Maps `[`/`{` to +1, `]`/`}` to -1 (as signed bytes), deleting every other byte.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[{]}"))


def is_json_content_type(content_type: str | None) -> bool:
    """Whether a body of this content type is parsed as JSON: `application/json` or
    `application/*+json`, in any case and with any parameters (as FastAPI decides)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def json_body_problem(body: bytes) -> str | None:
    """Why this JSON body must be refused before parsing, or None. The reason never quotes
    the body."""
    if not body:
        return None
    if json.detect_encoding(body) not in _ENCODINGS:
        return "a JSON body must be encoded in UTF-8"
    if _has_lone_surrogate(body):
        return "a JSON string holds a lone surrogate, which is not a character"
    if _depth(body) > MAX_JSON_DEPTH:
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    return None


def _has_lone_surrogate(body: bytes) -> bool:
    """Whether a string holds a surrogate that is not half of an escaped pair
    (`\\ud83d\\ude00` is one character; `\\ud83d` alone, or encoded as bytes, is not)."""
    if _ENCODED_SURROGATE.search(body):
        return True
    if not _MAY_ESCAPE_SURROGATE.search(body):
        return False
    high_ends = -1  # where the escape of a high surrogate waiting for its low half ends
    for escape in _ESCAPE.finditer(body):
        code = int(escape[1], 16) if escape[1] else -1
        if high_ends >= 0 and (escape.start() != high_ends or not 0xDC00 <= code <= 0xDFFF):
            return True
        if high_ends < 0 and 0xDC00 <= code <= 0xDFFF:
            return True
        high_ends = escape.end() if 0xD800 <= code <= 0xDBFF else -1
    return high_ends >= 0


def _depth(body: bytes) -> int:
    """How deep arrays and objects nest (brackets inside strings do not count)."""
    openers = sum(body.count(opener) for opener in _OPENERS)
    if openers <= MAX_JSON_DEPTH:
        return openers
    steps = _STRING.sub(b"", body).translate(_STEPS, _NOT_BRACKETS)
    return max(itertools.accumulate(array("b", steps)), default=0)

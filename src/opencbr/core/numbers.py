"""Whole numbers given as text: wire parameters (KMS spells them `"7"`), form fields, headers.

Only ASCII digits count: `str.isdigit` also takes `"²"` (which `int()` then refuses: a 500) and
`"٣"` (which `int()` quietly reads as 3), so it must not be used for this. Each caller raises
its own error naming the field and range.
"""

from __future__ import annotations

import re

__all__ = ["whole_number"]

# 18 digits are far past every range used here and far below int()'s 4300-digit limit.
_NUMBER = re.compile(r"[0-9]{1,18}")


def whole_number(value: str | int) -> int | None:
    """`value` as a non-negative int if its text is 1-18 ASCII digits; None otherwise."""
    text = str(value)
    return int(text) if _NUMBER.fullmatch(text) else None

"""How the console writes sizes: the product's units (`opencbr.core.sizes`), each with its exact
number of bytes (the title a pointer shows)."""

from __future__ import annotations

from markupsafe import Markup, escape

from opencbr.core.sizes import human_bytes

__all__ = ["UNITS_NOTE", "human_bytes", "size_markup"]

UNITS_NOTE = "1 GB = 1,024 MB = 2^30 bytes (1,073,741,824)."


def size_markup(value: int) -> Markup:
    """`human_bytes` for a page, with the exact number of bytes as its title."""
    return Markup('<span class="size" title="{:,} bytes">{}</span>').format(
        int(value), escape(human_bytes(value))
    )

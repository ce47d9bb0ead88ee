"""How the console writes sizes: the product's units, GB = 2^30 bytes.

Vault capacities and disk sizes are given in GB, where 1 GB is 2^30 bytes (1,073,741,824), so
every size the console shows uses the same powers of 1024 with the same plain names: KB =
2^10, MB = 2^20, GB = 2^30, TB = 2^40 bytes. "4.0 MB / 50 GB" then compares like with like.
Each size also carries its exact number of bytes (the title a pointer shows).
"""

from __future__ import annotations

from markupsafe import Markup, escape

__all__ = ["UNITS_NOTE", "human_bytes", "size_markup"]

UNITS_NOTE = "1 GB = 1,024 MB = 2^30 bytes (1,073,741,824)."
_UNITS = ("B", "KB", "MB", "GB", "TB")


def human_bytes(value: float) -> str:
    """`value` bytes in the largest unit under 1024 of it: "0 B", "4.0 MB", "1.5 GB"."""
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def size_markup(value: int) -> Markup:
    """`human_bytes` for a page, with the exact number of bytes as its title."""
    return Markup('<span class="size" title="{:,} bytes">{}</span>').format(
        int(value), escape(human_bytes(value))
    )

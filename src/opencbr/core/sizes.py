"""How sizes are written for people: the product's units, GB = 2^30 bytes.

Vault capacities and disk sizes are given in GB, where 1 GB is 2^30 bytes (1,073,741,824), so
every size shown (console and command line) uses the same powers of 1024 with the same plain
names: KB = 2^10, MB = 2^20, GB = 2^30, TB = 2^40 bytes. "4.0 MB / 50 GB" then compares like
with like.
"""

from __future__ import annotations

__all__ = ["UNITS", "human_bytes"]

UNITS = ("B", "KB", "MB", "GB", "TB")


def human_bytes(value: float | None, *, trim: bool = False) -> str:
    """`value` bytes in the largest unit under 1024 of it: "0 B", "4.0 MB", "1.5 GB" (TB at
    most); `trim` drops a ".0" ("10 GB"). None (a size not known) is ""."""
    if value is None:
        return ""
    for unit in UNITS:
        if abs(value) < 1024 or unit == UNITS[-1]:
            if unit == "B":
                return f"{value:.0f} B"
            shown = f"{value:.1f} {unit}"
            return shown.replace(".0 ", " ") if trim else shown
        value /= 1024
    raise AssertionError("unreachable")

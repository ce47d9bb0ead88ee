"""The `opencbr` command: serve, worker, admin bootstrap and client verbs."""

import sys

# httpx imports its own command line (`httpx._main`: click, pygments, rich's progress and
# syntax, ~0.35 s) whenever those are installed, and they are here. The `opencbr` command
# never uses it: a None entry makes that import fail, which httpx handles (its `main` then
# only explains that the extra is missing).
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__all__: list[str] = []

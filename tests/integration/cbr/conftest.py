"""Fixtures of the CBR integration tests (sharing: `sharing_fixtures`)."""

from __future__ import annotations

from tests.integration.cbr.sharing_fixtures import world

__all__ = ["world"]

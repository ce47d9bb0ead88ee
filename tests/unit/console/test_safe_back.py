"""Where the console may send a browser back to (after signing in, after a form): only a
relative path under /console, never another site (no open redirect)."""

from __future__ import annotations

import pytest

from opencbr.console.web import safe_back

HOME = "/console/cbr/server/vaults"


@pytest.mark.parametrize(
    "target",
    [
        "/console/kms",
        "/console/cbr/disk/backups?tab=shared&share_status=pending",
        "/console/cbr/disk/backups/1d14bb2e-0923-4cc9-b18b-dbbee1f02268/share",
    ],
)
def test_a_console_path_is_kept(target: str) -> None:
    assert safe_back(target, HOME) == target


@pytest.mark.parametrize(
    "target",
    [
        "",
        "https://evil.example/console/kms",
        "//evil.example/console/kms",
        "/\\evil.example",
        "/console\\..\\..\\evil",
        "/console/..//evil.example",
        "/console/../api",
        "/console/..",
        "/consolex/kms",
        "/console",
        "console/kms",
        "javascript:alert(1)",
        "/console/kms\r\nSet-Cookie: x=1",
        "/console/kms\tx",
        " /console/kms",
    ],
)
def test_anything_else_goes_to_the_default(target: str) -> None:
    assert safe_back(target, HOME) == HOME

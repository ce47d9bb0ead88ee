"""The documented error table is the one generated from the error classes."""

from __future__ import annotations

from pathlib import Path

from opencbr.cli.errors_cmd import catalogue, markdown_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_docs_error_table_is_generated_from_the_classes() -> None:
    hint = "regenerate: opencbr errors --markdown (into docs/errors.md)"
    assert markdown_table() in DOC.read_text(), hint


def test_every_code_has_one_status() -> None:
    codes = [row["code"] for row in catalogue()]
    assert len(codes) == len(set(codes))

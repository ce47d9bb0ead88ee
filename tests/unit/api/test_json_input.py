"""The checks on a raw JSON body: lone surrogates and nesting depth, read without parsing."""

from __future__ import annotations

import json

import pytest

from opencbr.core.json_input import MAX_JSON_DEPTH, is_json_content_type, json_body_problem


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\ud800"}',
        b'{"a": "\\uDBFF x"}',
        b'{"a": "\\udc00"}',
        b'{"a": "\\ud800\\ud800\\udc00"}',
        b'{"a": "\\ud800\\n\\udc00"}',
        b'{"\\ud800": 1}',
        b'["\\ud800", "\\udc00"]',
        b'{"a": "\xed\xa0\x80"}',
        b'{"a": "\\\\\\ud800"}',
    ],
)
def test_lone_surrogates_are_found(body: bytes) -> None:
    assert json_body_problem(body) is not None


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\ud83d\\ude00"}',
        b'{"a": "\\\\ud800"}',  # an escaped backslash, then the letters "ud800"
        '{"a": "\U0001f600"}'.encode(),
        b'{"a": "\\u00e9\\n"}',
    ],
)
def test_characters_are_not_surrogates(body: bytes) -> None:
    assert json_body_problem(body) is None
    json.loads(body)


def test_depth_counts_nesting_not_brackets() -> None:
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert json_body_problem(at_limit) is None
    assert json_body_problem(b"[" + at_limit + b"]") is not None
    many = b"[" + b",".join([b"[]"] * 1000) + b"]"
    assert json_body_problem(many) is None
    in_strings = json.dumps({"a": "[" * 1000, "b": '\\"{' * 100}).encode()
    assert json_body_problem(in_strings) is None


def test_only_utf8_json_is_read() -> None:
    assert json_body_problem('{"a": 1}'.encode("utf-16")) is not None
    assert json_body_problem('{"a": 1}'.encode("utf-8-sig")) is None


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("application/octet-stream", False),
        ("text/json", False),
        (None, False),
    ],
)
def test_json_content_types(content_type: str | None, expected: bool) -> None:
    assert is_json_content_type(content_type) is expected

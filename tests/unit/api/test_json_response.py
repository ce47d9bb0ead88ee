"""Responses rendered by pydantic-core carry the same JSON as Starlette's `json.dumps`."""

import json
from typing import Any

import pytest
from fastapi.responses import JSONResponse

from opencbr.core.web import FastJSONResponse

VALUES: list[Any] = [
    {"backup": {"id": "b1", "size": 40, "ratio": 1.5, "encrypted": False, "parent_id": None}},
    {"backups": [{"name": 'é ü 日本 \u2028 \x00 "quoted" </script> \\'}], "count": 2**70},
    {"nested": {"empty": {}, "list": [[], [1, -2, 3.25], ["tab\there"]]}},
    [],
    "plain",
]


@pytest.mark.parametrize("value", VALUES)
def test_the_same_bytes_as_starlette(value: Any) -> None:
    fast = FastJSONResponse(value)
    assert fast.body == JSONResponse(value).body
    assert fast.headers["content-type"] == "application/json"
    assert fast.headers["content-length"] == str(len(fast.body))


def test_floats_in_exponent_form_keep_their_value() -> None:
    value = {"small": 3.25e-7, "large": 1.5e300}
    fast = FastJSONResponse(value).body
    assert fast == b'{"small":3.25e-7,"large":1.5e+300}'  # Python writes 3.25e-07
    assert json.loads(fast) == value

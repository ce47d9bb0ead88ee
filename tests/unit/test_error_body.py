"""An error body can always be sent: text UTF-8 cannot encode is never echoed as it is."""

from __future__ import annotations

import pytest
from fastapi.responses import JSONResponse

from opencbr.core.errors import NotFound, error_body
from opencbr.evs.errors import DiskNotFound
from opencbr.kms.errors import KeyNotFound


@pytest.mark.parametrize("error_class", [NotFound, DiskNotFound, KeyNotFound])
def test_an_unencodable_value_in_a_message_is_escaped(error_class: type[NotFound]) -> None:
    error = error_class(kind="Disk", id="\ud800", key_id="\ud800")
    rendered = JSONResponse(error_body(error, "request-1")).body
    assert b"\\\\ud800" in rendered  # the escape's backslash, itself escaped by JSON
    assert "é".encode() in JSONResponse(error_body(NotFound(kind="é", id="x"), "r")).body

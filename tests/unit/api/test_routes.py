"""Every API operation is reached by its own route: no route answers a request meant for
another, whatever the order in which the app tries them."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Match, Route

from opencbr.api.app import create_app
from opencbr.api.runtime import build_runtime
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY

AN_ID = "0123456789abcdef0123456789abcdef"


def test_each_operation_is_matched_by_its_own_route_first(tmp_path: Path) -> None:
    runtime = build_runtime(Settings(data_dir=tmp_path / "data", root_key=ROOT_KEY))
    try:
        app = create_app(runtime)
        operations = [
            (method.upper(), template)
            for template, methods in app.openapi()["paths"].items()
            for method in methods
        ]
        assert len(operations) > 60
        for method, template in operations:
            path = re.sub(r"{[^}]+}", AN_ID, template)
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            first = next(
                route for route in app.router.routes if route.matches(scope)[0] == Match.FULL
            )
            assert isinstance(first, Route)
            assert first.path == template, f"{method} {template} reaches {first.path}"
    finally:
        runtime.database.dispose()

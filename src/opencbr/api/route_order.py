"""Routes for the operations the slices do not serve, and the order in which the app tries
its routes: a route with a fixed segment before one with a parameter in that place."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from opencbr.core.unsupported import NotSupported, NotSupportedOperation

from .runtime import SLICES

__all__ = ["not_supported_operations", "not_supported_routes", "specific_first"]


def not_supported_operations() -> list[NotSupportedOperation]:
    """Every slice's list of published operations it does not serve (`<slice>.unsupported`)."""
    found: list[NotSupportedOperation] = []
    for name in SLICES:
        try:
            module = importlib.import_module(f"opencbr.{name}.unsupported")
        except ModuleNotFoundError:
            continue
        found.extend(module.NOT_SUPPORTED)
    return found


def _answer(operation: NotSupportedOperation) -> Callable[[], Any]:
    def not_supported() -> NoReturn:
        raise NotSupported(
            operation=operation.operation_id,
            method=operation.method,
            path=operation.path,
            reason=operation.reason,
        )

    return not_supported


def _catches_all(path: str) -> bool:
    """`/` and `/{version}`: a route there would answer for every one-segment path (the
    console's `/console`); a request for them already answers "not found" (APIGW.0101)."""
    return path == "/" or path.startswith("/{")


def not_supported_routes() -> list[APIRoute]:
    """One route per operation no slice serves; each answers `NotSupported` (APIGW.0101)."""
    return [
        APIRoute(
            operation.path,
            _answer(operation),
            methods=[operation.method],
            operation_id=operation.operation_id,
            name=f"not_supported_{operation.sdk_method}",
            response_model=None,
            include_in_schema=False,
        )
        for operation in not_supported_operations()
        if not _catches_all(operation.path)
    ]


def _example_path(template: str) -> str:
    """A concrete path of `template`, each parameter replaced by a value no fixed segment has."""
    return re.sub(r"{[^}]+}", "\x00param\x00", template)


def _shadows(earlier: BaseRoute, later: BaseRoute) -> bool:
    """Whether `earlier` would answer a request meant for `later` (same method, and its path
    pattern matches `later`'s path with a parameter where `later` has a fixed segment)."""
    if not (isinstance(earlier, Route) and isinstance(later, Route)):
        return False
    if earlier.methods and later.methods and not (earlier.methods & later.methods):
        return False
    return earlier.path != later.path and bool(earlier.path_regex.match(_example_path(later.path)))


def specific_first(routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    """`routes` in their order, except that a route is moved before the first route that
    would shadow it: `/vaults/external` before `/vaults/{vault_id}`, whatever the order in
    which the slices registered them. Starlette answers with the first route that matches."""
    ordered: list[BaseRoute] = []
    for route in routes:
        place = next((i for i, seen in enumerate(ordered) if _shadows(seen, route)), None)
        if place is None:
            ordered.append(route)
        else:
            ordered.insert(place, route)
    return ordered

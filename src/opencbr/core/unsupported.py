"""Operations of the vendor's published API that this service does not serve.

Each slice lists them in its `unsupported` module; the API answers each with the gateway's
"not supported" error (`APIGW.0101`) on its own route, so that a request for one never falls
into a route with a path parameter (`GET /vaults/external` is not `ShowVault("external")`).
`docs/api-coverage.md` is generated from these lists and the SDK's methods.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import NotFound

__all__ = ["NotSupported", "NotSupportedOperation"]


@dataclass(frozen=True)
class NotSupportedOperation:
    """One published operation this service answers with `NotSupported`.

    `sdk_method` is the vendor SDK client's method name (`register_agent`); `path` is the
    request path template as the SDK sends it; `reason` says why, for the coverage page;
    `planned` marks an operation that is meant to be served later (not a lasting exemption)."""

    sdk_method: str
    method: str
    path: str
    reason: str
    planned: bool = False

    @property
    def operation_id(self) -> str:
        return "".join(part.capitalize() for part in self.sdk_method.split("_"))


class NotSupported(NotFound):
    """A published operation this service does not implement (see `docs/api-coverage.md`)."""

    code = "APIGW.0101"
    template = "The API {operation} ({method} {path}) is not supported by this service: {reason}."

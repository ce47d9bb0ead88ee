"""A minimal independent signer for tests that need to bend requests on purpose."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import httpx


def sign(
    method: str,
    url: str,
    ak: str,
    sk: str,
    body: bytes = b"",
    query: str = "",
    date: datetime | None = None,
    extra_headers: dict[str, str] | None = None,
    payload_hash: str | None = None,
) -> dict[str, str]:
    """Headers for a request signed the way the vendor SDK signs (written apart from the server);
    `payload_hash` replaces the body's hash (`UNSIGNED-PAYLOAD`)."""
    parsed = httpx.URL(url)
    sdk_date = (date or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "content-type": "application/json;charset=utf-8" if body else "application/json",
        "host": f"{parsed.host}:{parsed.port}",
        "x-sdk-date": sdk_date,
        **{k.lower(): v for k, v in (extra_headers or {}).items()},
    }
    path = "/".join(
        quote(seg, safe="~") for seg in unquote(parsed.raw_path.decode().split("?")[0]).split("/")
    )
    path += "" if path.endswith("/") else "/"
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            path,
            query,
            "".join(f"{n}:{headers[n]}\n" for n in names),
            ";".join(names),
            payload_hash or hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = f"SDK-HMAC-SHA256\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    sig = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={';'.join(names)}, Signature={sig}"
    )
    return headers

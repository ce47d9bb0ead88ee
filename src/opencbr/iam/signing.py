"""The SDK-HMAC-SHA256 request signature, as the vendor SDK computes it.

Used in both directions: the API verifies incoming requests with `verify_signature`, and the
CLI signs its own requests with `sign_headers`, so both ends share one canonicalisation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, quote, unquote

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "Authorization",
    "SignatureError",
    "canonical_query",
    "canonical_request",
    "check_date",
    "parse_authorization",
    "sign_headers",
    "signature",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AUTH = re.compile(
    r"^SDK-HMAC-SHA256 Access=(?P<ak>[^,\s]+), SignedHeaders=(?P<headers>[^,\s]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)


class SignatureError(Exception):
    """The request's signature is malformed, stale or wrong; the reason stays server-side."""


@dataclass(frozen=True)
class Authorization:
    access_key: str
    signed_headers: list[str]
    signature: str


def parse_authorization(value: str) -> Authorization:
    match = _AUTH.match(value.strip())
    if not match:
        raise SignatureError("malformed Authorization header")
    headers = match["headers"].split(";")
    if headers != sorted(headers) or "host" not in headers or "x-sdk-date" not in headers:
        raise SignatureError("signed headers must be sorted and include host and x-sdk-date")
    return Authorization(match["ak"], headers, match["sig"])


def _encode(value: str) -> str:
    return quote(value, safe="~")


def canonical_uri(raw_path: str) -> str:
    path = "/".join(_encode(segment) for segment in unquote(raw_path).split("/"))
    return path if path.endswith("/") else path + "/"


def canonical_query(raw_query: str) -> str:
    """Sorted, re-encoded `k=v` pairs; list values repeat the key, as the SDK sends them."""
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in pairs)


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    names = list(signed_headers)
    header_lines = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            header_lines,
            ";".join(names),
            payload_hash,
        ]
    )


def signature(secret_key: str, sdk_date: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{sdk_date}\n{digest}"
    return hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def check_date(sdk_date: str, now: datetime, skew: timedelta) -> None:
    try:
        when = datetime.strptime(sdk_date, DATE_FORMAT)
    except ValueError as exc:
        raise SignatureError("malformed X-Sdk-Date") from exc
    if abs(now - when) > skew:
        raise SignatureError("X-Sdk-Date outside the allowed clock skew")


def sign_headers(
    access_key: str,
    secret_key: str,
    method: str,
    url_path: str,
    raw_query: str,
    headers: dict[str, str],
    payload_hash: str,
    now: datetime,
) -> dict[str, str]:
    """Headers to add to a request (X-Sdk-Date, Authorization), signing every given header."""
    signed = {k.lower(): v for k, v in headers.items() if "_" not in k}
    signed["x-sdk-date"] = now.strftime(DATE_FORMAT)
    names = sorted(signed)
    canonical = canonical_request(method, url_path, raw_query, signed, names, payload_hash)
    sig = signature(secret_key, signed["x-sdk-date"], canonical)
    return {
        "X-Sdk-Date": signed["x-sdk-date"],
        "Authorization": f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(names)}, "
        f"Signature={sig}",
    }

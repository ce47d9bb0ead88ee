"""A signed HTTP client for the CLI's client verbs (SDK-HMAC-SHA256, like the vendor SDK)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from opencbr.core.clock import utcnow
from opencbr.iam import signing

__all__ = ["CLIENT_TOKEN_HEADER", "ApiError", "Client", "Profile", "profile_path"]

CLIENT_TOKEN_HEADER = "X-Client-Token"
# A try that may or may not have reached the service: a create call sends it again, same token.
_RETRIABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, request_id: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


@dataclass
class Profile:
    endpoint: str
    access_key: str
    secret_key: str
    project_id: str | None = None

    @classmethod
    def load(cls) -> Profile:
        """Environment first (`OPENCBR_ENDPOINT`, `..._ACCESS_KEY`, ...), then the saved profile."""
        saved: dict[str, Any] = {}
        path = profile_path()
        if path.exists():
            saved = json.loads(path.read_text())
        values: dict[str, str | None] = {
            "endpoint": os.environ.get("OPENCBR_ENDPOINT") or saved.get("endpoint"),
            "access_key": os.environ.get("OPENCBR_ACCESS_KEY") or saved.get("access_key"),
            "secret_key": os.environ.get("OPENCBR_SECRET_KEY") or saved.get("secret_key"),
            "project_id": os.environ.get("OPENCBR_PROJECT_ID") or saved.get("project_id"),
        }
        missing = [k for k in ("endpoint", "access_key", "secret_key") if not values[k]]
        if missing:
            raise ApiError(
                0,
                "CLI.0001",
                "not configured: run `opencbr configure` or set "
                + ", ".join("OPENCBR_" + m.upper() for m in missing),
                "",
            )
        return cls(
            endpoint=str(values["endpoint"]),
            access_key=str(values["access_key"]),
            secret_key=str(values["secret_key"]),
            project_id=values["project_id"],
        )

    def save(self) -> Path:
        path = profile_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(self), handle, indent=2)
        return path


def profile_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "opencbr" / "profile.json"


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    code = inner.get("error_code") or inner.get("code") or str(response.status_code)
    message = inner.get("error_msg") or inner.get("message") or response.text
    return ApiError(response.status_code, code, message, response.headers.get("x-request-id", ""))


class Client:
    def __init__(self, profile: Profile, timeout: float = 60.0) -> None:
        self.profile = profile
        self.http = httpx.Client(base_url=profile.endpoint, timeout=timeout)

    def project(self) -> str:
        if not self.profile.project_id:
            raise ApiError(
                0,
                "CLI.0002",
                "no project: set OPENCBR_PROJECT_ID or `opencbr configure --project-id`",
                "",
            )
        return self.profile.project_id

    def _headers(
        self,
        method: str,
        path: str,
        query: str,
        content_type: str,
        payload_hash: str,
        client_token: str | None = None,
    ) -> dict[str, str]:
        headers = {
            "Content-Type": content_type,
            "Host": urlsplit(self.profile.endpoint).netloc,
            "User-Agent": "opencbr-cli/0.1",
        }
        if client_token is not None:
            headers[CLIENT_TOKEN_HEADER] = client_token
        if self.profile.project_id:
            headers["X-Project-Id"] = self.profile.project_id
        if payload_hash == signing.UNSIGNED_PAYLOAD:
            headers["X-Sdk-Content-Sha256"] = signing.UNSIGNED_PAYLOAD
        headers.update(
            signing.sign_headers(
                self.profile.access_key,
                self.profile.secret_key,
                method,
                path,
                query,
                headers,
                payload_hash,
                utcnow(),
            )
        )
        return headers

    def create(self, path: str, body: Any, method: str = "POST") -> Any:
        """A create call, named by a new client token and sent again once with the same token
        when the first try timed out or lost its connection: the service answers a retry of a
        call it did with that call's answer, so the work is never done twice."""
        token = str(uuid.uuid4())
        try:
            return self.request(method, path, body, client_token=token)
        except _RETRIABLE:
            return self.request(method, path, body, client_token=token)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        client_token: str | None = None,
    ) -> Any:
        content = b"" if body is None else json.dumps(body).encode()
        query = signing.canonical_query(urlencode(_flatten(params or {})))
        payload_hash = hashlib.sha256(content).hexdigest() if content else signing.EMPTY_SHA256
        content_type = "application/json;charset=utf-8" if content else "application/json"
        headers = self._headers(method, path, query, content_type, payload_hash, client_token)
        url = path + ("?" + query if query else "")
        response = self.http.request(method, url, content=content, headers=headers)
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def upload(
        self, path: str, chunks: Iterable[bytes], length: int, params: dict[str, Any]
    ) -> Any:
        """Stream raw bytes (unsigned payload, as the SDK does for non-JSON bodies)."""
        query = signing.canonical_query(urlencode(_flatten(params)))
        headers = self._headers(
            "PUT", path, query, "application/octet-stream", signing.UNSIGNED_PAYLOAD
        )
        headers["Content-Length"] = str(length)
        response = self.http.request("PUT", path + "?" + query, content=chunks, headers=headers)
        if response.status_code >= 400:
            raise _error(response)
        return response.json() if response.content else None

    def download(self, path: str, params: dict[str, Any]) -> Iterator[bytes]:
        query = signing.canonical_query(urlencode(_flatten(params)))
        headers = self._headers("GET", path, query, "application/json", signing.EMPTY_SHA256)
        with self.http.stream("GET", path + "?" + query, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            yield from response.iter_bytes(1 << 20)


def _flatten(params: dict[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for item in values:
            pairs.append((key, str(item).lower() if isinstance(item, bool) else str(item)))
    return pairs

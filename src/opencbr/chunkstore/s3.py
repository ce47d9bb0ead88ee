"""An S3 backend: the chunk store's objects in one bucket under a key prefix.

Works with any S3 implementation that speaks SigV4 and path-style addressing (AWS S3, Ceph RGW,
MinIO, OpenStack Swift's s3api). What it relies on, and what it avoids:

* Objects are immutable and content-named, so a plain PUT is enough: a repeated PUT of a name
  writes the same bytes. No conditional PUT (`If-None-Match`; Swift answers 501).
* A PUT is atomic (readers see all of the object or none) and S3 lists are read-after-write
  consistent, which is what the backend protocol asks for (see `backend.py`).
* Every PUT carries `Content-MD5`, so the store rejects bytes damaged on the way.
* Transient failures (5xx, throttling, timeouts, dropped connections) are retried by botocore's
  "standard" retry mode with exponential backoff and jitter; a body that breaks off while being
  read is fetched again here. 4xx errors are not retried.
* Objects above `multipart_threshold` are uploaded in parts (each part retried on its own); an
  upload that fails is aborted so no parts are left behind.
* Deletes are single-object DELETEs: batch `DeleteObjects` needs a Content-MD5 header that
  boto3 ≥ 1.36 no longer sends, and which S3-compatible stores (Swift) require.
* Checksums beyond Content-MD5 are computed only "when required" (boto3 ≥ 1.36 otherwise adds
  CRC trailers that several S3-compatible stores reject).

`S3Backend.connect` checks once, at start, that the bucket can be reached with the credentials
(creating it when missing) and raises `StoreConfigurationError` with the reason otherwise, so a
misconfigured service stops with one clear message instead of failing every backup.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from .errors import ChunkStoreError, MissingObject

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["S3Backend", "S3Options", "StoreConfigurationError"]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_STREAM_ERRORS = (
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
    BotoConnectionError,
)
_BODY_ATTEMPTS = 3


class StoreConfigurationError(ChunkStoreError):
    """The object store cannot be used as configured (endpoint, credentials, bucket)."""

    code = "chunkstore.store_configuration"


@dataclass(frozen=True)
class S3Options:
    """How to reach the store; the caller reads these from its configuration."""

    endpoint: str | None = None  # None: AWS's endpoint for the region
    region: str = "us-east-1"
    access_key: str | None = None  # None: botocore's default credential chain
    secret_key: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 5  # per request, including the first
    max_connections: int = 32  # shared by all threads of the process
    multipart_threshold: int = 64 * MiB
    part_size: int = 16 * MiB  # S3 minimum is 5 MiB (except the last part)


def parse_store_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → (`bucket`, `some/prefix/`); the prefix may be empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise StoreConfigurationError(f"not an S3 store URL: {url!r} (expected s3://bucket/prefix)")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _check_name(name: str) -> None:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object name {name!r}")


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _md5(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class S3Backend:
    """The backend protocol (`backend.Backend`) over one bucket and key prefix. Thread-safe."""

    def __init__(
        self, client: S3Client, bucket: str, prefix: str = "", options: S3Options | None = None
    ) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.options = options or S3Options()
        if self.options.part_size < 5 * MiB:
            raise ValueError("part_size must be at least 5 MiB")

    @classmethod
    def connect(
        cls, url: str, options: S3Options | None = None, *, create_bucket: bool = True
    ) -> S3Backend:
        """A backend for `s3://bucket/prefix`, after checking the bucket is usable."""
        options = options or S3Options()
        bucket, prefix = parse_store_url(url)
        backend = cls(make_client(options), bucket, prefix, options)
        backend.check_bucket(create=create_bucket)
        return backend

    def _key(self, name: str) -> str:
        _check_name(name)
        return self.prefix + name

    # -- the protocol -----------------------------------------------------------------------

    def put(self, name: str, data: bytes) -> None:
        key = self._key(name)
        if len(data) > self.options.multipart_threshold:
            self._put_multipart(key, memoryview(data))
            return
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentMD5=_md5(data))

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        key = self._key(name)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            if not self.exists(name):
                raise MissingObject(name)
            return b""
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            request["Range"] = f"bytes={offset}-{end}"
        for attempt in range(1, _BODY_ATTEMPTS + 1):
            try:
                response = self.client.get_object(**request)
                return response["Body"].read()
            except ClientError as error:
                code = _error_code(error)
                if code in _NOT_FOUND:
                    raise MissingObject(name) from None
                if code == "InvalidRange":  # offset at or past the end
                    return b""
                raise
            except _STREAM_ERRORS:
                if attempt == _BODY_ATTEMPTS:
                    raise
                log.warning("s3: reading %s broke off (attempt %d), reading again", key, attempt)
        raise AssertionError("unreachable")

    def list(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        cut = len(self.prefix)
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                yield item["Key"][cut:]

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as error:
            if _error_code(error) not in _NOT_FOUND:
                raise

    def exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as error:
            if _error_code(error) in _NOT_FOUND:
                return False
            raise
        return True

    # -- beyond the protocol ----------------------------------------------------------------

    def size(self, prefix: str = "") -> int:
        """Bytes stored under `prefix` (a full listing: for occasional use, e.g. after GC)."""
        paginator = self.client.get_paginator("list_objects_v2")
        total = 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            total += sum(item.get("Size", 0) for item in page.get("Contents", []))
        return total

    def check_bucket(self, create: bool = True) -> None:
        """Reach the bucket once with these credentials; create it when missing (if allowed)."""
        where = f"bucket {self.bucket!r} at {self.options.endpoint or 'AWS ' + self.options.region}"
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            code = _error_code(error)
            if code not in _NOT_FOUND and code != "NoSuchBucket":
                raise StoreConfigurationError(_explain(code, where, self.options)) from None
        except BotoCoreError as error:
            raise StoreConfigurationError(f"cannot reach {where}: {error}") from None
        if not create:
            raise StoreConfigurationError(f"{where} does not exist")
        self._create_bucket(where)

    def _create_bucket(self, where: str) -> None:
        request: dict[str, Any] = {"Bucket": self.bucket}
        if self.options.region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": self.options.region}
        try:
            self.client.create_bucket(**request)
        except ClientError as error:
            code = _error_code(error)
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StoreConfigurationError(
                    f"cannot create {where}: {_explain(code, where, self.options)}"
                ) from None
        log.info("s3: created %s", where)

    def _put_multipart(self, key: str, data: memoryview) -> None:
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = upload["UploadId"]
        step = self.options.part_size
        try:
            parts: list[CompletedPartTypeDef] = []
            for number, start in enumerate(range(0, len(data), step), start=1):
                chunk = data[start : start + step]
                # Body is the slice's bytes; botocore retries each part on its own.
                body = bytes(chunk)
                done = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentMD5=_md5(body),
                )
                parts.append({"PartNumber": number, "ETag": done["ETag"]})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except (ClientError, BotoCoreError):
                log.warning("s3: could not abort the multipart upload of %s", key)
            raise


def make_client(options: S3Options) -> S3Client:
    """A client with timeouts, standard-mode retries and path-style addressing."""
    config = Config(
        region_name=options.region,
        signature_version="s3v4",
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"mode": "standard", "total_max_attempts": options.max_attempts},
        max_pool_connections=options.max_connections,
        s3={"addressing_style": "path" if options.endpoint else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=options.endpoint,
        aws_access_key_id=options.access_key,
        aws_secret_access_key=options.secret_key,
        config=config,
    )


def _explain(code: str, where: str, options: S3Options) -> str:
    key = options.access_key or "(default credential chain)"
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return (
            f"access to {where} denied ({code}) for access key {key}: check the S3 access and "
            "secret key and the bucket's permissions"
        )
    if code in ("301", "PermanentRedirect", "AuthorizationHeaderMalformed"):
        return f"{where} is in another region than {options.region!r} ({code})"
    return f"{where} answered {code or 'an error'}"

"""The backend contract on a real S3 store (Swift s3api from scripts/setup-swift.sh) and, for
comparison, on the local-directory and in-memory backends: all three must behave the same."""

from __future__ import annotations

import http.client
import http.server
import io
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from opencbr.chunkstore import ChunkStore, Scope
from opencbr.chunkstore.backend import Backend, LocalDirBackend, MemoryBackend
from opencbr.chunkstore.errors import MissingObject
from opencbr.chunkstore.s3 import (
    MiB,
    S3Backend,
    S3Options,
    StoreConfigurationError,
    make_client,
    parse_store_url,
)

# The store scripts/setup-swift.sh starts (its `env` command prints these variables).
ENDPOINT = os.environ.get("S3_ENDPOINT_URL", "http://127.0.0.1:18080")
ACCESS_KEY = os.environ.get("AWS_ACCESS_KEY_ID", "test:tester")
SECRET_KEY = os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


def s3_options(**overrides: object) -> S3Options:
    values: dict[str, object] = {
        "endpoint": ENDPOINT,
        "region": REGION,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        **overrides,
    }
    return S3Options(**values)  # type: ignore[arg-type]


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def s3_bucket() -> Iterator[str]:
    """A bucket for the run (created by the first start-up check), removed at the end."""
    if not _reachable(ENDPOINT):
        pytest.skip(f"no S3 store at {ENDPOINT} (scripts/setup-swift.sh starts one)")
    bucket = f"opencbr-test-{uuid.uuid4().hex[:12]}"
    yield bucket
    cleaner = S3Backend(make_client(s3_options()), bucket)
    try:
        _empty(cleaner)
        cleaner.client.delete_bucket(Bucket=bucket)
    except ClientError:
        pass  # never created, or a test left something behind: not worth failing the run


def _empty(backend: S3Backend) -> None:
    for name in list(backend.list("")):
        backend.delete(name)


@pytest.fixture
def s3_backend(s3_bucket: str) -> Iterator[S3Backend]:
    """A fresh key prefix in the session's bucket (created by the start-up check)."""
    backend = S3Backend.connect(f"s3://{s3_bucket}/t-{uuid.uuid4().hex[:8]}", s3_options())
    yield backend
    _empty(backend)


@pytest.fixture(params=["memory", "local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return MemoryBackend()
    if request.param == "local":
        return LocalDirBackend(tmp_path / "store")
    s3: S3Backend = request.getfixturevalue("s3_backend")
    return s3


# -- the contract, on every backend ----------------------------------------------------------


def test_put_get_and_ranges(backend: Backend) -> None:
    assert isinstance(backend, Backend)
    backend.put("packs/ab/ab01", b"0123456789")
    assert backend.get("packs/ab/ab01") == b"0123456789"
    assert backend.get("packs/ab/ab01", 3) == b"3456789"
    assert backend.get("packs/ab/ab01", 3, 4) == b"3456"
    assert backend.get("packs/ab/ab01", 8, 100) == b"89"  # fewer at the end, never padded
    assert backend.get("packs/ab/ab01", 10) == b""
    assert backend.get("packs/ab/ab01", 50, 5) == b""
    assert backend.get("packs/ab/ab01", 0, 0) == b""


def test_missing_objects(backend: Backend) -> None:
    with pytest.raises(MissingObject) as caught:
        backend.get("packs/none")
    assert caught.value.name == "packs/none"
    with pytest.raises(MissingObject):
        backend.get("packs/none", 5, 5)
    assert not backend.exists("packs/none")
    backend.delete("packs/none")  # deleting what is not there is not an error


def test_list_by_prefix_and_delete(backend: Backend) -> None:
    names = ["index/i1", "packs/aa/p1", "packs/aa/p2", "packs/ab/p3", "manifests/m1"]
    for name in names:
        backend.put(name, name.encode())
    assert sorted(backend.list("packs/")) == ["packs/aa/p1", "packs/aa/p2", "packs/ab/p3"]
    assert sorted(backend.list("packs/aa/")) == ["packs/aa/p1", "packs/aa/p2"]
    assert sorted(backend.list("")) == sorted(names)
    assert list(backend.list("nothing/")) == []
    backend.delete("packs/aa/p1")
    assert not backend.exists("packs/aa/p1")
    assert backend.exists("packs/aa/p2")
    assert sorted(backend.list("packs/")) == ["packs/aa/p2", "packs/ab/p3"]


def test_repeated_put_of_the_same_bytes(backend: Backend) -> None:
    data = os.urandom(1000)
    backend.put("packs/cd/same", data)
    backend.put("packs/cd/same", data)
    assert backend.get("packs/cd/same") == data
    assert list(backend.list("packs/cd/")) == ["packs/cd/same"]


def test_invalid_names_are_refused(backend: Backend) -> None:
    for name in ["", "/abs", "a//b", "a/../b", "./a"]:
        with pytest.raises(ValueError, match="invalid object name"):
            backend.put(name, b"x")


def test_concurrent_writers_and_readers(backend: Backend) -> None:
    blobs = {f"packs/{i:02x}/obj": os.urandom(4096 + i) for i in range(24)}
    errors: list[BaseException] = []

    def work(items: list[tuple[str, bytes]]) -> None:
        try:
            for name, data in items:
                backend.put(name, data)
                assert backend.get(name) == data
        except BaseException as exc:
            errors.append(exc)

    items = list(blobs.items())
    threads = [threading.Thread(target=work, args=(items[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(backend.list("packs/")) == sorted(blobs)


# -- S3 only ---------------------------------------------------------------------------------


def test_large_objects_go_up_in_parts(s3_bucket: str) -> None:
    options = s3_options(multipart_threshold=6 * MiB, part_size=5 * MiB)
    backend = S3Backend.connect(f"s3://{s3_bucket}/mp-{uuid.uuid4().hex[:8]}", options)
    data = os.urandom(11 * MiB + 123)  # 3 parts, the last one short
    try:
        backend.put("packs/ff/big", data)
        assert backend.get("packs/ff/big") == data
        assert backend.get("packs/ff/big", 5 * MiB - 10, 20) == data[5 * MiB - 10 : 5 * MiB + 10]
        head = backend.client.head_object(Bucket=s3_bucket, Key=backend.prefix + "packs/ff/big")
        assert head["ContentLength"] == len(data)
        assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag names its part count
        uploads = backend.client.list_multipart_uploads(Bucket=s3_bucket, Prefix=backend.prefix)
        assert not uploads.get("Uploads")  # nothing left half-uploaded
        assert backend.size() == len(data)
    finally:
        _empty(backend)


def test_prefixes_keep_stores_apart(s3_bucket: str) -> None:
    one = S3Backend.connect(f"s3://{s3_bucket}/apart-{uuid.uuid4().hex[:6]}/a", s3_options())
    two = S3Backend.connect(f"s3://{s3_bucket}/{one.prefix.rstrip('/')}b", s3_options())
    try:
        one.put("x/1", b"one")
        two.put("x/1", b"two")
        assert one.get("x/1") == b"one"
        assert list(one.list("")) == ["x/1"]
        assert list(two.list("")) == ["x/1"]
    finally:
        _empty(one)
        _empty(two)


def test_a_missing_bucket_is_created_at_start(s3_bucket: str) -> None:
    bucket = f"opencbr-new-{uuid.uuid4().hex[:10]}"
    backend = S3Backend.connect(f"s3://{bucket}", s3_options())
    try:
        backend.put("a", b"1")
        assert backend.get("a") == b"1"
        S3Backend.connect(f"s3://{bucket}/again", s3_options())  # exists now: fine
    finally:
        _empty(backend)
        backend.client.delete_bucket(Bucket=bucket)


def test_wrong_credentials_fail_at_start_with_a_clear_error(s3_bucket: str) -> None:
    with pytest.raises(StoreConfigurationError) as caught:
        S3Backend.connect(f"s3://{s3_bucket}/x", s3_options(secret_key="not-the-secret"))
    message = caught.value.message
    assert s3_bucket in message
    assert "denied" in message
    assert ACCESS_KEY in message
    assert "not-the-secret" not in message


def test_unreachable_endpoint_fails_at_start_with_a_clear_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = s3_options(endpoint=f"http://127.0.0.1:{port}", max_attempts=2, connect_timeout=1)
    with pytest.raises(StoreConfigurationError, match="cannot reach bucket 'b'"):
        S3Backend.connect("s3://b/p", options)


def test_a_missing_bucket_is_an_error_when_creation_is_off(s3_bucket: str) -> None:
    with pytest.raises(StoreConfigurationError, match="does not exist"):
        S3Backend.connect(f"s3://no-such-{uuid.uuid4().hex[:8]}", s3_options(), create_bucket=False)


def test_store_urls() -> None:
    assert parse_store_url("s3://bucket") == ("bucket", "")
    assert parse_store_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    for wrong in ["bucket/x", "file:///x", "s3:///x"]:
        with pytest.raises(StoreConfigurationError):
            parse_store_url(wrong)


def test_client_uses_standard_retries_and_path_style() -> None:
    config = make_client(s3_options()).meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert config.s3 == {"addressing_style": "path"}


# -- faults between us and the store: a proxy in front of the real S3 store -------------------


class FaultyProxy:
    """Forwards requests to the S3 store, after answering the first `fail` of them with
    503 SlowDown, or stalling them past the client's read timeout (`stall` seconds)."""

    def __init__(self, target: str, fail: int = 0, stall: float = 0.0) -> None:
        self.target = urlsplit(target)
        self.fail, self.stall = fail, stall
        self.seen = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    proxy.seen += 1
                    faulty = proxy.seen <= proxy.fail
                if faulty and proxy.stall:
                    time.sleep(proxy.stall)
                if faulty:
                    error = b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                upstream = http.client.HTTPConnection(
                    proxy.target.hostname or "", proxy.target.port, timeout=30
                )
                upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _any  # noqa: N815

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_server_errors_are_retried_with_backoff(s3_bucket: str) -> None:
    S3Backend.connect(f"s3://{s3_bucket}", s3_options())  # the bucket exists
    with FaultyProxy(ENDPOINT) as proxy:
        options = s3_options(endpoint=proxy.url, max_attempts=3)
        backend = S3Backend(make_client(options), s3_bucket, "retry/")
        proxy.fail = proxy.seen + 2  # the next two requests answer 503
        backend.put("packs/aa/r", b"survives")
        assert proxy.seen == 3
        proxy.fail = proxy.seen + 2
        assert backend.get("packs/aa/r") == b"survives"
        proxy.fail = proxy.seen + 3  # as many as the attempts allowed: the error surfaces
        with pytest.raises(ClientError, match="SlowDown"):
            backend.get("packs/aa/r")
        assert proxy.seen == proxy.fail
        proxy.fail = 0
        backend.delete("packs/aa/r")


def test_timeouts_are_retried(s3_bucket: str) -> None:
    S3Backend.connect(f"s3://{s3_bucket}", s3_options())
    with FaultyProxy(ENDPOINT, stall=2.0) as proxy:
        options = s3_options(endpoint=proxy.url, read_timeout=0.5)
        backend = S3Backend(make_client(options), s3_bucket, "timeout/")
        proxy.fail = proxy.seen + 1  # the next request stalls past the read timeout
        backend.put("packs/aa/t", b"late but there")
        assert backend.get("packs/aa/t") == b"late but there"
        backend.delete("packs/aa/t")


# -- the whole data plane on S3 ---------------------------------------------------------------


def test_chunk_store_backup_restore_verify_gc_on_s3(s3_backend: S3Backend, tmp_path: Path) -> None:
    block = 64 * 1024
    scope = Scope("s3-scope", os.urandom(32), os.urandom(32))
    payload = os.urandom(6 * block)
    image = payload + bytes(4 * block) + payload[:block] + b"tail"  # data, holes, a duplicate
    store = ChunkStore(s3_backend, block_size=block, pack_size=4 * block, batch_bytes=2 * block)
    first = store.backup(scope, io.BytesIO(image), len(image))
    target = tmp_path / "restored.img"
    store.restore(scope, first.manifest_id, target)
    assert target.read_bytes() == image
    assert (
        store.read_range(scope, first.manifest_id, 5 * block, 2 * block)
        == image[5 * block : 7 * block]
    )
    assert store.verify(scope, first.manifest_id).ok
    assert any(name.startswith("packs/") for name in s3_backend.list("packs/"))

    # A fresh store over the same prefix (another process) sees everything.
    other = ChunkStore(S3Backend(s3_backend.client, s3_backend.bucket, s3_backend.prefix))
    assert other.list_manifests() == [first.manifest_id]
    store.delete_manifest(first.manifest_id)
    result = store.gc_execute(store.gc_plan(grace=0))
    assert result.deleted_packs
    assert not list(s3_backend.list("packs/"))

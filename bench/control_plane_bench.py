"""Control-plane benchmark: signed API calls against `opencbr serve --workers 2 --no-jobs` on
PostgreSQL with 100,000 backups and 11,000 share members (records only, bulk-inserted).

    uv run python bench/control_plane_bench.py [--seconds 8] [--clients 16] [--workers 2]

Prints p50/p99 latency and throughput of ListBackups (own_type=shared, first page of 50; by
a recipient of the newest backups and by one of the oldest), ShowBackup, AddMember and
UpdateMemberStatus at N concurrent clients, and the CPU each request cost the API processes,
PostgreSQL and the load generator. The clients are wrk (Debian's package, installed when
missing) with one keep-alive connection per thread, replaying requests signed just before the
run; they share the machine with the server. Needs the PostgreSQL
server of the tests (127.0.0.1:5432); makes and drops a fresh database.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg

from opencbr.api.runtime import build_runtime
from opencbr.cbr.models import Vault
from opencbr.cli.client import Client, Profile
from opencbr.core.settings import Settings
from opencbr.iam import service as iam
from opencbr.iam import signing
from opencbr.iam.service import TenantCredentials

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKUPS = 100_000
OWNERS = 20  # projects owning the backups (5,000 each)
RECIPIENTS = 10
SHARED = 1_000  # the newest backups, shared with every recipient: 10,000 members (and the
# oldest, with one more recipient: 1,000)
REQUESTS_PER_CLIENT = 200  # distinct signed reads per connection, sent over again
MiB = 1024 * 1024


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def populate(settings: Settings) -> dict[str, Any]:
    """Tenants, one vault each, 100k available disk backups and 11k members, in bulk SQL."""
    runtime = build_runtime(settings)
    regions = settings.regions

    def tenant(prefix: str) -> TenantCredentials:
        with runtime.database.unit_of_work() as session:
            return iam.create_tenant(
                session, runtime.root_key, regions, f"{prefix}-{uuid.uuid4().hex[:6]}", ["region-1"]
            )

    owners = [tenant("owner") for _ in range(OWNERS)]
    recipients = [tenant("recipient") for _ in range(RECIPIENTS)]
    later = tenant("later-recipient")
    vaults: dict[str, str] = {}
    with runtime.database.unit_of_work() as session:
        for creds in [*owners, *recipients, later]:
            project = creds.projects["region-1"]
            vault = Vault(
                id=str(uuid.uuid4()),
                project_id=project,
                region="region-1",
                user_id="bench",
                name=f"vault-{project[:6]}",
                object_type="disk",
                size_gb=100_000,
                used_bytes=0,
            )
            session.add(vault)
            vaults[project] = vault.id
    owner_projects = [c.projects["region-1"] for c in owners]
    url = settings.effective_database_url.replace("postgresql+psycopg", "postgresql")
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TEMP TABLE owners (n int, project_id text, vault_id text)")
        with conn.cursor().copy("COPY owners FROM STDIN") as copy:
            for n, project in enumerate(owner_projects):
                copy.write_row((n, project, vaults[project]))
        conn.execute(
            """
            INSERT INTO cbr_backups (
                id, project_id, region, vault_id, checkpoint_id, parent_id, name, description,
                status, resource_id, resource_name, resource_type, resource_az,
                resource_size_gb, bootable, device, size_bytes, stored_bytes, incremental,
                base_backup_id, encrypted, kms_key_id, scope_id, manifest_id, auto_trigger,
                policy_id, error_message, created_at, updated_at, protected_at, expired_at)
            SELECT gen_random_uuid()::text, o.project_id, 'region-1', o.vault_id,
                gen_random_uuid()::text, NULL, 'backup-' || g, '', 'available',
                gen_random_uuid()::text, 'disk-' || (g %% 97), 'OS::Cinder::Volume', 'az1',
                1, false, '', 4 * 1048576, 1048576, g %% 5 <> 0, NULL, false, '', NULL,
                md5(g::text), false, NULL, '',
                now() at time zone 'utc' - make_interval(secs => g),
                now() at time zone 'utc' - make_interval(secs => g),
                now() at time zone 'utc' - make_interval(secs => g), NULL
            FROM generate_series(1, %s) AS g JOIN owners o ON o.n = g %% %s
            """,
            (BACKUPS, OWNERS),
        )
        # The newest SHARED backups are shared with every recipient (half accepted).
        conn.execute(
            "CREATE TEMP TABLE shared AS SELECT id, created_at, row_number() OVER "
            "(ORDER BY id) AS k FROM cbr_backups ORDER BY created_at DESC LIMIT %s",
            (SHARED,),
        )
        with conn.cursor().copy("COPY owners FROM STDIN") as copy:
            for n, creds in enumerate(recipients):
                project = creds.projects["region-1"]
                copy.write_row((1000 + n, project, vaults[project]))
        conn.execute(
            """
            INSERT INTO cbr_members (id, backup_id, backup_created_at, dest_project_id, status,
                vault_id, image_id, reserved_bytes, created_at, updated_at)
            SELECT gen_random_uuid()::text, s.id, s.created_at, r.project_id,
                CASE WHEN s.k % 2 = 0 THEN 'accepted' ELSE 'pending' END,
                CASE WHEN s.k % 2 = 0 THEN r.vault_id END, NULL,
                CASE WHEN s.k % 2 = 0 THEN 4 * 1048576 ELSE 0 END,
                now() at time zone 'utc', now() at time zone 'utc'
            FROM shared s CROSS JOIN owners r WHERE r.n >= 1000
            """
        )
        # One more recipient was given the oldest SHARED backups (pending): its listing must
        # not walk the newer backups of the region to find them.
        conn.execute(
            """
            INSERT INTO cbr_members (id, backup_id, backup_created_at, dest_project_id, status,
                vault_id, image_id, reserved_bytes, created_at, updated_at)
            SELECT gen_random_uuid()::text, b.id, b.created_at, %s, 'pending', NULL, NULL, 0,
                now() at time zone 'utc', now() at time zone 'utc'
            FROM (SELECT id, created_at FROM cbr_backups ORDER BY created_at LIMIT %s) b
            """,
            (later.projects["region-1"], SHARED),
        )
        conn.execute(
            """
            UPDATE cbr_vaults v SET used_bytes = x.used FROM (
                SELECT vault_id, sum(reserved_bytes) AS used FROM cbr_members
                WHERE status = 'accepted' GROUP BY vault_id) x
            WHERE v.id = x.vault_id
            """
        )
        conn.execute("ANALYZE")
        shared_ids = [row[0] for row in conn.execute("SELECT id FROM shared")]
        fresh = {
            project: [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM cbr_backups WHERE project_id = %s AND id NOT IN "
                    "(SELECT id FROM shared) LIMIT 3000",
                    (project,),
                )
            ]
            for project in owner_projects[:4]
        }
        conn.commit()
    loaded = time.perf_counter() - started
    runtime.database.dispose()
    return {
        "owners": owners,
        "recipients": recipients,
        "later": later,
        "vaults": vaults,
        "shared": shared_ids,
        "fresh": fresh,
        "load_seconds": loaded,
    }


# ------------------------------------------------------------------------------ the load


@dataclass
class Signed:
    """One pre-signed request, as wrk sends it."""

    method: str
    path: str
    headers: dict[str, str]
    body: str | None = None

    def http(self) -> bytes:
        body = (self.body or "").encode()
        lines = [f"{self.method} {self.path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def signer(host: str, creds: TenantCredentials) -> Callable[..., Signed]:
    """Sign requests as the CLI and the SDK do (SDK-HMAC-SHA256, X-Sdk-Date now): the server
    checks every one in full. A signature stays valid for the allowed clock skew (15 min), so
    the requests are made before a run and replayed by wrk, which costs the shared CPUs far
    less than signing clients in Python would."""
    api = client(f"http://{host}", creds)

    def sign(
        method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Signed:
        content = "" if body is None else json.dumps(body)
        query = signing.canonical_query(urlencode(params or {}))
        payload = hashlib.sha256(content.encode()).hexdigest() if content else signing.EMPTY_SHA256
        kind = "application/json;charset=utf-8" if content else "application/json"
        headers = api._headers(method, path, query, kind, payload)
        url = path + ("?" + query if query else "")
        return Signed(method, url, headers, content or None)

    return sign


# Each wrk thread has one connection and its own file of raw requests (NUL-separated), read
# at start and sent in order, over again: a script holding every request would be parsed by
# every thread, which takes seconds while the first threads already send.
WRK_SCRIPT = """
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
function init(args)
  local file = io.open(args[1] .. "/" .. id)
  local data = file:read("*a")
  file:close()
  mine, i = {}, 0
  local at = 1
  while at <= #data do
    local stop = data:find("\\0", at, true)
    table.insert(mine, data:sub(at, stop - 1))
    at = stop + 1
  end
end
function request()
  i = i % #mine + 1
  return mine[i]
end
function response(status, headers, body)
  if status >= 400 and not first_error then
    first_error = status .. " " .. body
    io.stderr:write(first_error .. "\\n")
  end
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status))
end
"""


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu: dict[str, float]  # CPU-seconds used during the run, by party

    def row(self) -> str:
        rate = self.requests / self.seconds
        per = {k: v / max(self.requests, 1) * 1000 for k, v in self.cpu.items()}
        return (
            f"| {self.name} | {self.requests} | {rate:,.0f} | {self.p50_ms:.1f} | "
            f"{self.p99_ms:.1f} | {self.errors} | {per['api']:.2f} | {per['postgres']:.2f} | "
            f"{per['wrk']:.2f} | {self.cpu['machine']:.0%} |"
        )


def _cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU-seconds the whole machine has spent busy (not idle, not waiting for I/O)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


def run(name: str, endpoint: str, server: int, lists: list[list[Signed]], seconds: float) -> Result:
    """Drive `lists` (one per connection) with wrk for `seconds`; latencies from wrk, CPU from
    /proc: the API processes (the server's descendants), PostgreSQL and wrk itself."""
    folder = Path(tempfile.mkdtemp(prefix="opencbr-wrk-"))
    script = folder / "load.lua"
    script.write_text(WRK_SCRIPT)
    for n, requests in enumerate(lists):
        (folder / str(n)).write_bytes(b"".join(r.http() + b"\0" for r in requests))
    api, postgres = _descendants(server), _postgres_pids()
    before = {"api": _cpu_seconds(api), "postgres": _cpu_seconds(postgres)}
    n = str(len(lists))
    cmd = ["wrk", "-t", n, "-c", n, "-d", f"{seconds:.0f}s", "-s", str(script), endpoint, "--"]
    cmd.append(str(folder))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy, started = _machine_busy(), time.perf_counter()
    wrk = subprocess.run(cmd, capture_output=True, text=True)
    busy, wall = _machine_busy() - busy, time.perf_counter() - started
    out, err = wrk.stdout, wrk.stderr
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    shutil.rmtree(folder)
    postgres = sorted(set(postgres) | set(_postgres_pids()))
    cpu = {
        "api": _cpu_seconds(api) - before["api"],
        "postgres": _cpu_seconds(postgres) - before["postgres"],
        "wrk": wrk_cpu,
        "machine": busy / (wall * (os.cpu_count() or 1)),  # share of all CPUs that was busy
    }
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {err or out}")
    if err.strip():
        print(f"  {name}: first error: {err.strip().splitlines()[0][:200]}")
    requests, duration, p50, p99, errors = (int(x) for x in line.split()[1:])
    return Result(name, requests, duration / 1e6, p50 / 1000, p99 / 1000, errors, cpu)


def client(endpoint: str, creds: TenantCredentials) -> Client:
    project = creds.projects["region-1"]
    return Client(Profile(endpoint, creds.access_key, creds.secret_key, project), timeout=30)


def ensure_wrk() -> None:
    if shutil.which("wrk") is None:
        print("installing wrk from Debian ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        apt = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(apt, env=env).returncode:
            subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
            subprocess.run(apt, check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="API processes")
    parser.add_argument("--keep", action="store_true", help="keep the database and server")
    parser.add_argument("--only", help="run only the calls whose names contain this text")
    args = parser.parse_args()
    ensure_wrk()

    name = f"opencbr_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    data_dir = Path(tempfile.mkdtemp(prefix="opencbr-bench-"))
    root_key = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(data_dir=data_dir, database_url=database_url, root_key=root_key)
    server: subprocess.Popen[bytes] | None = None
    try:
        world = populate(settings)
        print(
            f"loaded {BACKUPS:,} backups and {SHARED * (RECIPIENTS + 1):,} members "
            f"in {world['load_seconds']:.1f} s"
        )
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "OPENCBR_DATA_DIR": str(data_dir),
            "OPENCBR_DATABASE_URL": database_url,
            "OPENCBR_ROOT_KEY": root_key,
            "OPENCBR_LOG_LEVEL": "WARNING",
        }
        opencbr = str(Path(sys.executable).parent / "opencbr")
        server = subprocess.Popen(
            [opencbr, "serve", "--workers", str(args.workers), "--no-jobs", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(endpoint + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        time.sleep(2)  # every API process up
        owners: list[TenantCredentials] = world["owners"]
        recipients: list[TenantCredentials] = world["recipients"]
        shared: list[str] = world["shared"]
        fresh: dict[str, list[str]] = world["fresh"]
        rng = random.Random(7)
        host = f"127.0.0.1:{port}"
        clients = range(args.clients)

        def project_of(creds: TenantCredentials) -> str:
            return creds.projects["region-1"]

        def list_shared(i: int) -> list[Signed]:
            creds = recipients[i % RECIPIENTS]
            sign, path = signer(host, creds), f"/v3/{project_of(creds)}/backups"
            return [sign("GET", path, params={"own_type": "shared", "limit": 50})]

        def list_older_shares(i: int) -> list[Signed]:
            creds: TenantCredentials = world["later"]
            sign, path = signer(host, creds), f"/v3/{project_of(creds)}/backups"
            return [sign("GET", path, params={"own_type": "shared", "limit": 50})]

        def show(i: int) -> list[Signed]:
            creds = owners[i % 4]
            sign, ids = signer(host, creds), fresh[project_of(creds)]
            return [
                sign("GET", f"/v3/{project_of(creds)}/backups/{rng.choice(ids)}")
                for _ in range(REQUESTS_PER_CLIENT)
            ]

        def show_shared(i: int) -> list[Signed]:
            creds = recipients[i % RECIPIENTS]
            sign = signer(host, creds)
            return [
                sign("GET", f"/v3/{project_of(creds)}/backups/{rng.choice(shared)}")
                for _ in range(REQUESTS_PER_CLIENT)
            ]

        def add_member(i: int) -> list[Signed]:
            # Four clients per owner, each sharing its own backups, one more per call.
            creds = owners[i % 4]
            sign, project = signer(host, creds), project_of(creds)
            dest = project_of(recipients[i % RECIPIENTS])
            return [
                sign("POST", f"/v3/{project}/backups/{backup_id}/members", {"members": [dest]})
                for backup_id in fresh[project][i // 4 :: 4]
            ]

        def update_member(i: int) -> list[Signed]:
            # Clients of one recipient take disjoint members; accept them all, then reject.
            creds = recipients[i % RECIPIENTS]
            sign, project = signer(host, creds), project_of(creds)
            mine = shared[i // RECIPIENTS :: (args.clients // RECIPIENTS) + 1]
            accept = {"status": "accepted", "vault_id": world["vaults"][project]}
            return [
                sign("PUT", f"/v3/{project}/backups/{backup_id}/members/{project}", body)
                for body in (accept, {"status": "rejected"})
                for backup_id in mine
            ]

        calls = [
            ("ListBackups own_type=shared limit=50", list_shared),
            ("ListBackups, the oldest backups shared", list_older_shares),
            ("ShowBackup (owner)", show),
            ("ShowBackup (recipient)", show_shared),
            ("AddMember", add_member),
            ("UpdateMemberStatus", update_member),
        ]
        results = []
        for call, make in calls:
            if args.only and args.only not in call:
                continue
            lists = [make(i) for i in clients]
            if call.startswith(("List", "Show")):  # reads can repeat: warm the processes up
                run(call, endpoint, server.pid, lists, 2)
            results.append(run(call, endpoint, server.pid, lists, args.seconds))
        print(
            f"\n{args.clients} clients (wrk, one connection each), {args.workers} API processes, "
            f"{args.seconds:.0f} s each, {os.cpu_count()} CPUs\n"
        )
        print(
            "| call | requests | req/s | p50 ms | p99 ms | errors "
            "| CPU ms/request: API | PostgreSQL | wrk | CPUs busy |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for result in results:
            print(result.row())
        if args.keep:
            print(f"\nserver {endpoint} (pid {server.pid}), database {database_url}")
            server.wait()
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()

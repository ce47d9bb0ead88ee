"""Control-plane benchmark: signed API calls against `opencbr serve --workers 2 --no-jobs` on
PostgreSQL with 100,000 backups and 10,000 share members (records only, bulk-inserted).

    uv run python bench/control_plane_bench.py [--seconds 8] [--clients 16] [--workers 2]

Prints p50/p99 latency and throughput of ListBackups (own_type=shared, first page of 50),
ShowBackup, AddMember and UpdateMemberStatus at N concurrent clients (threads, each with its
own keep-alive connection; the clients run on the same machine as the server). Needs the
PostgreSQL server of the tests (127.0.0.1:5432); makes and drops a fresh database.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from opencbr.api.runtime import build_runtime
from opencbr.cbr.models import Vault
from opencbr.cli.client import ApiError, Client, Profile
from opencbr.core.settings import Settings
from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKUPS = 100_000
OWNERS = 20  # projects owning the backups (5,000 each)
RECIPIENTS = 10
SHARED = 1_000  # backups shared with every recipient: 10,000 members
MiB = 1024 * 1024


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def populate(settings: Settings) -> dict[str, Any]:
    """Tenants, one vault each, 100k available disk backups and 10k members, in bulk SQL."""
    runtime = build_runtime(settings)
    regions = settings.regions

    def tenant(prefix: str) -> TenantCredentials:
        with runtime.database.unit_of_work() as session:
            return iam.create_tenant(
                session, runtime.root_key, regions, f"{prefix}-{uuid.uuid4().hex[:6]}", ["region-1"]
            )

    owners = [tenant("owner") for _ in range(OWNERS)]
    recipients = [tenant("recipient") for _ in range(RECIPIENTS)]
    vaults: dict[str, str] = {}
    with runtime.database.unit_of_work() as session:
        for creds in [*owners, *recipients]:
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
            "CREATE TEMP TABLE shared AS SELECT id, row_number() OVER (ORDER BY id) AS k "
            "FROM cbr_backups ORDER BY created_at DESC LIMIT %s",
            (SHARED,),
        )
        with conn.cursor().copy("COPY owners FROM STDIN") as copy:
            for n, creds in enumerate(recipients):
                project = creds.projects["region-1"]
                copy.write_row((1000 + n, project, vaults[project]))
        conn.execute(
            """
            INSERT INTO cbr_members (id, backup_id, dest_project_id, status, vault_id,
                image_id, reserved_bytes, created_at, updated_at)
            SELECT gen_random_uuid()::text, s.id, r.project_id,
                CASE WHEN s.k % 2 = 0 THEN 'accepted' ELSE 'pending' END,
                CASE WHEN s.k % 2 = 0 THEN r.vault_id END, NULL,
                CASE WHEN s.k % 2 = 0 THEN 4 * 1048576 ELSE 0 END,
                now() at time zone 'utc', now() at time zone 'utc'
            FROM shared s CROSS JOIN owners r WHERE r.n >= 1000
            """
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
        "vaults": vaults,
        "shared": shared_ids,
        "fresh": fresh,
        "load_seconds": loaded,
    }


class Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.elapsed = 0.0
        self.lock = threading.Lock()

    def row(self) -> str:
        lat = sorted(self.latencies)
        n = len(lat)
        if not n:
            return f"| {self.name} | 0 | - | - | - | {self.errors} |"
        p50 = lat[n // 2] * 1000
        p99 = lat[min(n - 1, int(n * 0.99))] * 1000
        rate = n / self.elapsed
        errors = ", ".join(f"{k}: {v}" for k, v in self.errors.items()) or "0"
        return f"| {self.name} | {n} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {errors} |"


def run(
    name: str,
    clients: int,
    seconds: float,
    make: Callable[[int], Callable[[], None]],
) -> Result:
    result = Result(name)
    calls = [make(i) for i in range(clients)]
    for call in calls:  # warm the connection and the process
        for _ in range(3):
            with contextlib.suppress(ApiError):
                call()
    deadline = time.perf_counter() + seconds
    barrier = threading.Barrier(clients + 1)

    def loop(call: Callable[[], None]) -> None:
        mine: list[float] = []
        errors: dict[str, int] = {}
        barrier.wait()
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                call()
            except ApiError as error:
                errors[f"{error.status} {error.code}"] = (
                    errors.get(f"{error.status} {error.code}", 0) + 1
                )
                continue
            mine.append(time.perf_counter() - t0)
        with result.lock:
            result.latencies.extend(mine)
            for k, v in errors.items():
                result.errors[k] = result.errors.get(k, 0) + v

    threads = [threading.Thread(target=loop, args=(c,)) for c in calls]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    result.elapsed = time.perf_counter() - started
    return result


def client(endpoint: str, creds: TenantCredentials) -> Client:
    project = creds.projects["region-1"]
    return Client(Profile(endpoint, creds.access_key, creds.secret_key, project), timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="API processes")
    parser.add_argument("--keep", action="store_true", help="keep the database and server")
    args = parser.parse_args()

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
            f"loaded {BACKUPS:,} backups and {SHARED * RECIPIENTS:,} members "
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
        rng = random.Random(7)
        own_backups: dict[str, list[str]] = world["fresh"]
        results = []

        def list_shared(i: int) -> Callable[[], None]:
            api = client(endpoint, recipients[i % RECIPIENTS])
            path = f"/v3/{api.project()}/backups"
            return lambda: api.request("GET", path, params={"own_type": "shared", "limit": 50})

        def show(i: int) -> Callable[[], None]:
            creds = owners[i % 4]
            api = client(endpoint, creds)
            ids = own_backups[creds.projects["region-1"]]
            return lambda: api.request("GET", f"/v3/{api.project()}/backups/{rng.choice(ids)}")

        def show_shared(i: int) -> Callable[[], None]:
            api = client(endpoint, recipients[i % RECIPIENTS])
            return lambda: api.request("GET", f"/v3/{api.project()}/backups/{rng.choice(shared)}")

        results.append(
            run("ListBackups own_type=shared limit=50", args.clients, args.seconds, list_shared)
        )
        results.append(run("ShowBackup (owner)", args.clients, args.seconds, show))
        results.append(run("ShowBackup (recipient)", args.clients, args.seconds, show_shared))

        def add_member(i: int) -> Callable[[], None]:
            creds = owners[i % 4]
            api = client(endpoint, creds)
            # Clients of one owner take disjoint backups; each call shares one more backup.
            ids = own_backups[creds.projects["region-1"]][i // 4 :: 4]
            dest = recipients[i % RECIPIENTS].projects["region-1"]
            todo = iter(ids)

            def call() -> None:
                backup_id = next(todo)
                api.request(
                    "POST", f"/v3/{api.project()}/backups/{backup_id}/members", {"members": [dest]}
                )

            return call

        results.append(run("AddMember", args.clients, args.seconds, add_member))

        def update_member(i: int) -> Callable[[], None]:
            creds = recipients[i % RECIPIENTS]
            api = client(endpoint, creds)
            project = creds.projects["region-1"]
            vault_id = world["vaults"][project]
            # Clients of one recipient take disjoint members; each call flips one member.
            mine = shared[i // RECIPIENTS :: (args.clients // RECIPIENTS) + 1]
            state = {"n": 0}

            def call() -> None:
                n = state["n"]
                state["n"] += 1
                backup_id = mine[n % len(mine)]
                accept = (n // len(mine)) % 2 == 0
                body: dict[str, Any] = (
                    {"status": "accepted", "vault_id": vault_id}
                    if accept
                    else {"status": "rejected"}
                )
                api.request("PUT", f"/v3/{project}/backups/{backup_id}/members/{project}", body)

            return call

        results.append(run("UpdateMemberStatus", args.clients, args.seconds, update_member))

        print(
            f"\n{args.clients} clients, {args.workers} API processes, {args.seconds:.0f} s each, "
            f"{os.cpu_count()} CPUs\n"
        )
        print("| call | requests | req/s | p50 ms | p99 ms | errors |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
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

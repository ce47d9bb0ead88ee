"""`/healthz` says the process serves; `/readyz` says whether it can work: 200 while the
database and the store answer, 503 naming the part that does not."""

from __future__ import annotations

from pathlib import Path

import httpx

from opencbr.core.context import Runtime
from opencbr.core.db import Database
from tests.conftest import LiveServer


def test_ready_while_the_database_and_the_store_answer(runtime: Runtime) -> None:
    with LiveServer(runtime) as live:
        ready = httpx.get(live.url + "/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "store": "ok"}}

        store = Path(runtime.settings.data_dir) / "store"
        store.rename(store.with_name("store-gone"))  # an unmounted volume
        try:
            gone = httpx.get(live.url + "/readyz")
            assert gone.status_code == 503
            assert gone.json()["checks"] == {"database": "ok", "store": "unavailable"}
            assert httpx.get(live.url + "/healthz").status_code == 200  # alive all the same
        finally:
            store.with_name("store-gone").rename(store)
        assert httpx.get(live.url + "/readyz").status_code == 200


def test_not_ready_while_the_database_does_not_answer(runtime: Runtime) -> None:
    unreachable = Database("postgresql+psycopg://postgres@127.0.0.1:9/opencbr")  # discard port
    cut_off = Runtime(runtime.settings, unreachable, runtime.root_key)
    with LiveServer(cut_off) as live:
        answer = httpx.get(live.url + "/readyz")
    unreachable.dispose()
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"database": "unavailable", "store": "ok"}

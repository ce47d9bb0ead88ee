"""What an API process sets up when it starts serving, and lets go of when it stops."""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from opencbr.api.app import create_app
from opencbr.api.runtime import build_runtime
from opencbr.core.settings import Settings
from tests.conftest import ROOT_KEY


def test_what_the_process_holds_at_start_is_left_out_of_full_collections(
    tmp_path: Path,
) -> None:
    runtime = build_runtime(Settings(data_dir=tmp_path / "data", root_key=ROOT_KEY))
    app = create_app(runtime)

    async def serve_and_stop() -> int:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    try:
        # A thread of its own: another test's browser driver may own this thread's event loop.
        with ThreadPoolExecutor(1) as pool:
            frozen = pool.submit(asyncio.run, serve_and_stop()).result()
        # The app, its routes and the mappers: a full collection no longer walks them.
        assert frozen > 10_000
        assert app.state.request_threads is None  # its request threads ended with it
    finally:
        gc.unfreeze()
        runtime.database.dispose()

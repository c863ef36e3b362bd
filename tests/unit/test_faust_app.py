"""The faust app factory: the consumer faust builds gets our fetch wait, not its own."""

from __future__ import annotations

import pytest

from hexcast.core.faustapp import create_faust_app
from hexcast.core.settings import load_settings


@pytest.mark.parametrize("wait_ms", [100, 2500])
async def test_worker_consumer_gets_the_configured_fetch_wait(tmp_path: object, wait_ms: int) -> None:
    settings = load_settings(broker_url="kafka://127.0.0.1:1", state_dir=str(tmp_path),
                             broker_fetch_max_wait_ms=wait_ms)
    app = create_faust_app(settings, role="unit")
    thread = app.consumer._thread  # builds the aiokafka consumer; nothing connects yet
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == wait_ms

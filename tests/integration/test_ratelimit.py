"""The Lua token bucket holds its rate across many workers sharing one Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

from hexcast.cache import connect_redis
from sender.ratelimit import TokenBucket
from tests.integration.conftest import REDIS_URL


async def _worker(key: str, stop_at: float, rate: float, burst: float) -> int:
    client = connect_redis(REDIS_URL)
    bucket = TokenBucket(client, key, rate=rate, burst=burst)
    taken = 0
    try:
        while time.monotonic() < stop_at:
            taken += await bucket.acquire(7)
    finally:
        await client.aclose()
    return taken


async def test_eight_workers_never_exceed_rate_plus_burst() -> None:
    key = f"hxtest:{uuid.uuid4().hex}:rl"
    rate, burst, seconds = 200.0, 50.0, 2.0
    start = time.monotonic()
    totals = await asyncio.gather(
        *(_worker(key, start + seconds, rate, burst) for _ in range(8))
    )
    elapsed = time.monotonic() - start
    allowed = burst + rate * elapsed + 7 * 8  # the last in-flight grant of each worker
    assert sum(totals) <= allowed
    assert sum(totals) >= rate * seconds * 0.5  # the bucket does hand out its rate
    assert all(t > 0 for t in totals)  # every worker progresses


async def test_partial_grants_and_wait_hint() -> None:
    client = connect_redis(REDIS_URL)
    key = f"hxtest:{uuid.uuid4().hex}:rl"
    try:
        bucket = TokenBucket(client, key, rate=10.0, burst=5.0)
        first = await bucket.try_acquire(8)
        assert first.granted == 5
        assert first.wait_s > 0
        second = await bucket.try_acquire(3)
        assert second.granted == 0
        assert 0 < second.wait_s <= 0.1 + 1e-9
    finally:
        await client.delete(key)
        await client.aclose()

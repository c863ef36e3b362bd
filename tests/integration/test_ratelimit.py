"""The Lua token bucket holds its rate across many workers sharing one Redis, and shares the
bulk capacity fairly among the tenants asking for it."""

from __future__ import annotations

import asyncio
import time
import uuid

from redis.asyncio import Redis

from hexcast.core.cache import connect_redis
from hexcast.testing import REDIS_URL
from sender.limits import FairShare, TokenBucket


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


async def _tenant_worker(
    client: Redis, prefix: str, tenant: str, stop_at: float, share: FairShare
) -> int:
    """One in-flight chunk of ``tenant``: takes from the bulk bucket and its fair share."""
    bucket = TokenBucket(client, f"{prefix}bulk", rate=share.rate, burst=share.burst)
    fair = bucket.shared_by(share, tenant)
    taken = 0
    while time.monotonic() < stop_at:
        taken += await fair.acquire(5)
    return taken


async def test_active_tenants_split_the_bulk_capacity_and_one_alone_gets_all() -> None:
    client = connect_redis(REDIS_URL)
    prefix = f"hxtest:{uuid.uuid4().hex}:"
    share = FairShare(key=f"{prefix}tenant", active_key=f"{prefix}active", rate=300.0,
                      burst=30.0, window_s=1.0)
    try:
        start = time.monotonic()
        alone = await _tenant_worker(client, prefix, "a", start + 1.0, share)
        assert alone > share.rate / 2 + share.burst  # more than half: nobody else is active
        await asyncio.sleep(1.2)  # tenant a's activity lapses
        start = time.monotonic()
        # Tenant a has four chunks in flight, tenant b one: each tenant gets half.
        big = [_tenant_worker(client, prefix, "a", start + 2.0, share) for _ in range(4)]
        b_total, *a_parts = await asyncio.gather(
            _tenant_worker(client, prefix, "b", start + 2.0, share), *big)
        elapsed = time.monotonic() - start
        a_total = sum(a_parts)
        half = share.rate / 2 * elapsed + share.burst
        assert a_total <= half + 5 * 4  # plus the last grant of each in-flight chunk
        assert b_total <= half + 5
        assert b_total >= 0.6 * a_total  # the single chunk is not outrun by the four
    finally:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
        await client.aclose()

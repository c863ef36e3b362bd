"""Per-recipient caps in Redis (one Lua call per chunk): local day, rolling 24 h, spacing."""

from __future__ import annotations

import time
import uuid

from hexcast.core.cache import connect_redis
from hexcast.testing import REDIS_URL
from sender.limits import CapCheck, CapRule, RecipientCaps

DAY_MS = 86_400_000


def _check(key: str, member: str, rule: CapRule, *, day_start_ms: int | None = None) -> CapCheck:
    now_ms = int(time.time() * 1000)
    start = now_ms - 1000 if day_start_ms is None else day_start_ms
    return CapCheck(key=key, message_key=member, day_start_ms=start, next_day_ms=start + DAY_MS,
                    rule=rule)


async def test_caps_per_day_per_24h_spacing_and_retries() -> None:
    client = connect_redis(REDIS_URL)
    prefix = f"hxtest:{uuid.uuid4().hex}:cap:"
    caps = RecipientCaps(client)
    try:
        per_day = CapRule(per_day=2, per_24h=10, min_spacing_s=0)
        waits = await caps.check([_check(prefix + "a", f"m{i}", per_day) for i in range(3)])
        assert waits[:2] == [0, 0]
        assert 0 < waits[2] <= DAY_MS / 1000  # until the next local day
        assert await caps.check([_check(prefix + "a", "m1", per_day)]) == [0]  # a retry

        rolling = CapRule(per_day=10, per_24h=3, min_spacing_s=0)
        waits = await caps.check([_check(prefix + "b", f"m{i}", rolling, day_start_ms=0)
                                  for i in range(4)])
        assert waits[:3] == [0, 0, 0]
        assert 86_000 < waits[3] <= 86_400  # until the oldest leaves the window

        spaced = CapRule(per_day=10, per_24h=10, min_spacing_s=30)
        waits = await caps.check([_check(prefix + "c", "m0", spaced), _check(prefix + "c", "m1", spaced)])
        assert waits[0] == 0
        assert 29 < waits[1] <= 30
        other = await caps.check([_check(prefix + "d", "m0", spaced)])  # another recipient
        assert other == [0]
    finally:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
        await client.aclose()

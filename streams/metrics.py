"""Matcher metrics per tenant: Redis hash counters, exported by the api's ``/metrics/matcher``.

Matchers add up counts in memory and flush them about once a second in one pipeline, so the
hot path does not talk to Redis for metrics. Reasons: see ``streams.matcher`` (accuracy,
no_geofence, outside_hours, no_interest, not_triggered, duplicate, no_profile, no_consent) and
``streams.gate`` (cooldown, cap, budget, max_per_visit).
"""

from __future__ import annotations

import time
from collections import Counter

import redis.asyncio as aioredis

from hexcast.core.cache import Keys

__all__ = ["MatcherMetrics", "matcher_metrics_key", "render_matcher_metrics"]

_TOTALS = {"visits": "hexcast_matcher_visits_total", "matched": "hexcast_matcher_matched_total",
           "triggered": "hexcast_matcher_triggered_total",
           "budget_released": "hexcast_matcher_budget_released_total"}


def matcher_metrics_key(keys: Keys, tenant_id: int | str) -> str:
    return keys("metrics", "matcher", tenant_id)


def _tenants_key(keys: Keys) -> str:
    return keys("metrics", "matcher_tenants")


class MatcherMetrics:
    """Per-tenant counters of one matcher process, flushed to Redis."""

    def __init__(self, client: aioredis.Redis, keys: Keys, *, every_s: float = 1.0) -> None:
        self._client = client
        self._keys = keys
        self._every = every_s
        self._pending: dict[int, Counter[str]] = {}
        self._last = time.monotonic()

    def add(self, tenant_id: int, counts: Counter[str]) -> None:
        self._pending.setdefault(tenant_id, Counter()).update(counts)

    def due(self) -> bool:
        return bool(self._pending) and time.monotonic() - self._last >= self._every

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        self._last = time.monotonic()
        if not pending:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.sadd(_tenants_key(self._keys), *pending)
            for tenant_id, counts in pending.items():
                for name, n in counts.items():
                    if n:
                        pipe.hincrby(matcher_metrics_key(self._keys, tenant_id), name, n)
            await pipe.execute()


async def render_matcher_metrics(client: aioredis.Redis, keys: Keys) -> str:
    """Prometheus text: visits in, matched, and suppressed by reason, per tenant."""
    tenants = sorted(_text(t) for t in await client.smembers(_tenants_key(keys)))
    async with client.pipeline(transaction=False) as pipe:
        for tenant in tenants:
            pipe.hgetall(matcher_metrics_key(keys, tenant))
        hashes = await pipe.execute()
    per_tenant = {t: {_text(k): int(v) for k, v in h.items()} for t, h in zip(tenants, hashes, strict=True)}
    lines: list[str] = []
    for name, metric in _TOTALS.items():
        lines.append(f"# TYPE {metric} counter")
        lines += [f'{metric}{{tenant="{t}"}} {c.get(name, 0)}' for t, c in sorted(per_tenant.items())]
    lines.append("# TYPE hexcast_matcher_suppressed_total counter")
    for tenant, counts in sorted(per_tenant.items()):
        lines += [f'hexcast_matcher_suppressed_total{{tenant="{tenant}",reason="{r}"}} {n}'
                  for r, n in sorted(counts.items()) if r not in _TOTALS]
    return "\n".join(lines) + "\n"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

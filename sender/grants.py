"""Capacity before a provider call: which account of the lane may take the next messages now.

An account grants when its circuit breaker lets calls through and its shared limits have room:
its requests/s (one request per batch call, one per message for a single-message API), its
segments/s, the campaign run's pace and, on the bulk lane, the tenant's fair share. Accounts
that just failed this chunk come last; while none can grant, :meth:`Grants.take` waits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial

from sender import metrics
from sender.journal import until_up
from sender.models import PACE_WINDOW_S, Lane
from sender.routing import Route, Router
from sender.run_gate import Pace

__all__ = ["Grant", "Grants", "window"]


@dataclass(frozen=True, slots=True)
class Grant:
    route: Route
    segments: int  # segments granted for a head of the messages (at least the first)
    requests: int  # requests taken from the account's requests/s (0 without such a limit)


class Grants:
    def __init__(self, *, router: Router, lane: Lane) -> None:
        self._router = router
        self._lane = lane

    async def take(self, sizes: list[int], avoid: set[str], pace: Pace | None, tenant: int,
                   country: str | None = None) -> Grant:
        """A grant for messages of ``sizes`` segments of ``tenant`` (to ``country``, when routes
        serve some countries only); waits until one is made (the waits are counted by what
        held them: ``hexcast_rate_limit_waits_total``)."""
        waited: dict[str, float] = {}
        while True:
            await until_up(self._router.refresh)
            routes = self._router.for_lane(self._lane, tenant, country)
            routes.sort(key=lambda r: r.spec.name in avoid)
            wait, held = 1.0, "no_route"
            for route in routes:
                if route.breaker.retry_in() > 0:
                    wait, held = min((wait, held), (route.breaker.retry_in(), "breaker"))
                    continue
                granted, requests, wait_s = await self._try(route, sizes, pace, tenant)
                if granted and route.breaker.allow():
                    _count_waits(self._lane, waited)
                    return Grant(route, granted, requests)
                limit = "breaker" if granted else wait_s[1]
                wait, held = min((wait, held), (wait_s[0] or 0.05, limit))
            pause = max(wait, 0.005)
            waited[held] = waited.get(held, 0.0) + pause
            await asyncio.sleep(pause)

    async def _try(
        self, route: Route, sizes: list[int], pace: Pace | None, tenant: int
    ) -> tuple[int, int, tuple[float, str]]:
        """Requests first, then the segments of the messages those requests can carry; unused
        requests go back. Returns (segments, requests, seconds to wait when none and the limit
        that holds them)."""
        requests = 0
        if route.requests is not None:
            wanted = 1 if route.spec.mode == "batch" else len(sizes)
            got = await until_up(partial(route.requests.try_acquire, wanted))
            if not got.granted:
                return 0, 0, (got.wait_s, "requests")
            requests = got.granted
            sizes = sizes if route.spec.mode == "batch" else sizes[:requests]
        bucket = route.bucket
        minimum = sizes[0]
        if pace is not None:
            bucket = bucket.capped(pace[0], rate=pace[1], burst=max(pace[1] * PACE_WINDOW_S, sizes[0]))
            minimum = window(sizes, bucket.burst, route.adapter.max_batch)
        if route.fair is not None:
            bucket = bucket.shared_by(route.fair, str(tenant))
        grant = await until_up(partial(bucket.try_acquire, sum(sizes), minimum))
        if not grant.granted and requests and route.requests is not None:
            await until_up(partial(route.requests.refund, requests))
            requests = 0
        return grant.granted, requests, (grant.wait_s, "pace" if pace is not None else "segments")

    async def refund_requests(self, grant: Grant, used: int) -> None:
        """A single-message account granted more requests than messages fit the segments."""
        route = grant.route
        if route.requests is not None and route.spec.mode == "single" and grant.requests > used:
            await until_up(partial(route.requests.refund, grant.requests - used))


def _count_waits(lane: Lane, waited: dict[str, float]) -> None:
    """One grant's waits: once per limit that held it, with the seconds it waited for it."""
    for limit, seconds in waited.items():
        metrics.RATE_LIMIT_WAITS.labels(lane=lane.value, limit=limit).inc()
        metrics.RATE_LIMIT_WAIT_SECONDS.labels(lane=lane.value, limit=limit).inc(seconds)


def window(sizes: list[int], burst: float, max_batch: int) -> int:
    """What a paced grant waits for: the segments of the longest head of ``sizes`` (messages'
    segments) of at most ``max_batch`` messages that fits the pacing window (``burst``), at
    least the first message. Taking whatever tokens trickled in instead made a run paced at
    800/s send ~5 messages a provider call."""
    used = 0
    for n, size in enumerate(sizes[:max(1, max_batch)]):
        if n and used + size > burst:
            break
        used += size
    return used

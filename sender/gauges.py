"""The sender's gauges that a scrape cannot know by itself, refreshed by each sender process
every :data:`REFRESH_S` (``hexcast.core.metrics.refresh_every``): its routes' live states
(drained, disabled: the operators' Redis hash), the DLQ depth (two Redis keys) and its SMPP
binds (in process). None of them reads PostgreSQL.

The DLQ depth is the letters the senders wrote (:func:`note_letters`, one ``INCRBY`` per group
of letters) minus the distinct ones ``hexcast dlq replay`` replayed (a set of offsets,
:func:`replayed_key`). Every sender reports the same depth: read it as ``max``, not ``sum``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from hexcast.core.cache import Keys
from sender import metrics
from sender.providers.base import Connected
from sender.route_control import RouteControl, RouteState
from sender.routing import Router

__all__ = ["REFRESH_S", "binds_refresher", "letters_key", "note_letters", "redis_refresher",
           "replayed_key"]

REFRESH_S = 5.0
Refresh = Callable[[], Awaitable[None]]


def letters_key(keys: Keys) -> str:
    """How many dead letters the senders wrote (a counter)."""
    return keys("metrics", "dlq_letters")


def replayed_key(keys: Keys) -> str:
    """The set of send.dlq offsets ``hexcast dlq replay`` has replayed."""
    return keys("metrics", "dlq_replayed")


async def note_letters(client: aioredis.Redis, keys: Keys, count: int) -> None:
    if count:
        await client.incrby(letters_key(keys), count)


def redis_refresher(router: Router, client: aioredis.Redis, keys: Keys) -> Refresh:
    """The refresh of the gauges read from Redis: route states and DLQ depth."""
    control = RouteControl(client, keys)
    names = [r.spec.name for r in router.routes]

    async def refresh() -> None:
        states = await control.states()
        for name in names:
            state = states.get(name, RouteState.ENABLED)
            metrics.ROUTE_DRAINED.labels(provider=name).set(state is RouteState.DRAINING)
            metrics.ROUTE_DISABLED.labels(provider=name).set(state is RouteState.DISABLED)
        written = int(await client.get(letters_key(keys)) or 0)
        replayed = int(await client.scard(replayed_key(keys)))
        metrics.DLQ_DEPTH.set(max(0, written - replayed))

    return refresh


def binds_refresher(router: Router) -> Refresh:
    """The refresh of the live SMPP binds of this process's routes."""
    connected = [(r.spec.name, r.adapter) for r in router.routes if isinstance(r.adapter, Connected)]

    async def refresh() -> None:
        for name, adapter in connected:
            metrics.SMPP_LIVE_BINDS.labels(provider=name).set(adapter.live_binds)

    return refresh

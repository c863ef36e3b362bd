"""Live route control: drain, disable or enable a provider route without a restart.

The states live in one Redis hash that every sender reads at most once a second (its
:class:`~sender.routing.Router` leaves routes not ``enabled`` out of new grants), so a change
applies within about a second. Calls already made finish. Each provider call is registered
while it runs (a sorted set per route, scored by when the registration expires, so a crashed
sender's calls stop counting): ``drain`` waits until a route has none left; ``disable`` does
not wait. Every action is audited in PostgreSQL (``route_actions``: who, when, why).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hexcast.core.cache import Keys
from hexcast.core.db import Conn

__all__ = ["RouteAction", "RouteControl", "RouteState", "act", "audit", "history"]


class RouteState(StrEnum):
    ENABLED = "enabled"
    DRAINING = "draining"
    DISABLED = "disabled"


class RouteAction(StrEnum):
    DRAIN = "drain"
    DISABLE = "disable"
    ENABLE = "enable"

    @property
    def state(self) -> RouteState:
        return {RouteAction.DRAIN: RouteState.DRAINING, RouteAction.DISABLE: RouteState.DISABLED,
                RouteAction.ENABLE: RouteState.ENABLED}[self]


class RouteControl:
    """The routes' live states and calls in flight, shared through Redis."""

    def __init__(self, client: aioredis.Redis, keys: Keys, *, call_ttl_s: float = 120.0) -> None:
        self._client = client
        self._keys = keys
        self._call_ttl_ms = int(call_ttl_s * 1000)

    async def states(self) -> dict[str, RouteState]:
        """Every route an operator has acted on (others are enabled)."""
        raw = await self._client.hgetall(self._keys("routes", "state"))
        return {_text(k): RouteState(_text(v)) for k, v in raw.items()}

    async def unavailable(self) -> frozenset[str]:
        """The routes that take no new traffic now (draining or disabled)."""
        return frozenset(name for name, state in (await self.states()).items()
                         if state is not RouteState.ENABLED)

    async def set(self, route: str, state: RouteState) -> None:
        await self._client.hset(self._keys("routes", "state"), route, state.value)

    @asynccontextmanager
    async def call(self, route: str) -> AsyncIterator[None]:
        """Register a provider call to ``route`` while it runs."""
        key, token = self._keys("routes", "inflight", route), uuid.uuid4().hex
        try:
            await self._client.zadd(key, {token: _now_ms() + self._call_ttl_ms})
        except RedisError:  # the call goes on unregistered: a drain may not wait for it
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(RedisError):  # it expires by itself
                await self._client.zrem(key, token)

    async def in_flight(self, route: str) -> int:
        """Calls to ``route`` running now, in every sender."""
        key = self._keys("routes", "inflight", route)
        now = _now_ms()
        await self._client.zremrangebyscore(key, "-inf", now)
        return int(await self._client.zcount(key, now, "+inf"))


async def audit(conn: Conn, *, route: str, action: RouteAction, actor: str, reason: str) -> None:
    await conn.execute(
        "INSERT INTO route_actions (route, action, actor, reason) VALUES ($1, $2, $3, $4)",
        route, action.value, actor, reason)


async def history(conn: Conn, *, route: str, limit: int = 20) -> list[tuple[str, str, str, str]]:
    """(action, actor, reason, ISO time) of the route's latest actions, newest first."""
    rows = await conn.fetch(
        "SELECT action, actor, reason, at FROM route_actions WHERE route = $1"
        " ORDER BY id DESC LIMIT $2", route, limit)
    return [(r["action"], r["actor"], r["reason"], r["at"].isoformat()) for r in rows]


async def act(
    control: RouteControl, conn: Conn, *, route: str, action: RouteAction, actor: str, reason: str,
) -> None:
    """Apply an operator's action to ``route`` and audit it (the audit row first: an action
    that is in effect is always in the trail)."""
    await audit(conn, route=route, action=action, actor=actor, reason=reason)
    await control.set(route, action.state)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

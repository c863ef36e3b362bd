"""Redis: one client factory, with keys namespaced by the configured prefix."""

from __future__ import annotations

import redis.asyncio as aioredis
import redis.exceptions

__all__ = ["REDIS_OUTAGES", "Keys", "connect_redis"]

REDIS_OUTAGES: tuple[type[Exception], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""Redis is unreachable: no item's fault, so the work pauses instead of dead-lettering."""


def connect_redis(url: str) -> aioredis.Redis:
    """A pooled async client. Connection errors surface on first use."""
    return aioredis.Redis.from_url(
        url, decode_responses=False, socket_timeout=5, socket_connect_timeout=5
    )


class Keys:
    """Builds namespaced keys so that tests and tenants never collide."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, *parts: object) -> str:
        return self.prefix + ":".join(map(str, parts))

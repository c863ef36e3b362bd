"""The api's readiness probe: whether PostgreSQL and Redis answer now."""

from __future__ import annotations

import asyncio

import asyncpg
from redis.asyncio import Redis

from hexcast.core.cache import REDIS_OUTAGES
from hexcast.core.db import PG_OUTAGES
from hexcast.core.logging import get_logger

__all__ = ["PROBE_TIMEOUT_S", "readiness"]

log = get_logger("hexcast.api")
_REDIS_DOWN: tuple[type[Exception], ...] = (*REDIS_OUTAGES, TimeoutError)
PROBE_TIMEOUT_S = 2.0
"""How long each probe may take: a server that does not answer by then counts as down."""


async def readiness(pool: asyncpg.Pool, redis: Redis) -> dict[str, bool]:
    """``{"postgres": ..., "redis": ...}``: True for each that answered within
    :data:`PROBE_TIMEOUT_S` (both probed side by side)."""
    pg, rd = await asyncio.gather(_postgres(pool), _redis(redis))
    return {"postgres": pg, "redis": rd}


async def _postgres(pool: asyncpg.Pool) -> bool:
    try:
        async with pool.acquire(timeout=PROBE_TIMEOUT_S) as conn:
            await conn.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_S)
    except PG_OUTAGES as exc:
        log.warning("not_ready", dependency="postgres", error=f"{type(exc).__name__}: {exc}")
        return False
    return True


async def _redis(redis: Redis) -> bool:
    try:
        await asyncio.wait_for(redis.ping(), PROBE_TIMEOUT_S)
    except _REDIS_DOWN as exc:
        log.warning("not_ready", dependency="redis", error=f"{type(exc).__name__}: {exc}")
        return False
    return True

"""Rate limits shared by all workers: a token bucket in Redis, driven by one Lua script."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis.asyncio as aioredis

from sender.lua import TOKEN_BUCKET

__all__ = ["Grant", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int
    wait_s: float


class TokenBucket:
    """``rate`` tokens per second up to ``burst``, one Redis key, any number of workers."""

    def __init__(self, client: aioredis.Redis, key: str, *, rate: float, burst: float) -> None:
        self._script = client.register_script(TOKEN_BUCKET)
        self._key = key
        self.rate = rate
        self.burst = burst

    async def try_acquire(self, requested: int) -> Grant:
        """Take up to ``requested`` tokens now; says how long to wait for more."""
        granted, wait_ms = await self._script(
            keys=[self._key], args=[self.rate, self.burst, requested]
        )
        return Grant(granted=int(granted), wait_s=int(wait_ms) / 1000)

    async def acquire(self, requested: int) -> int:
        """Wait until at least one token is granted; returns how many (≤ requested)."""
        while True:
            grant = await self.try_acquire(requested)
            if grant.granted > 0:
                return grant.granted
            await asyncio.sleep(grant.wait_s)

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

    def __init__(
        self, client: aioredis.Redis, key: str, *, rate: float, burst: float,
        pausable: bool = False,
    ) -> None:
        self._client = client
        self._script = client.register_script(TOKEN_BUCKET)
        self._keys = [key, f"{key}:pause"] if pausable else [key]
        self.rate = rate
        self.burst = burst

    async def try_acquire(self, requested: int) -> Grant:
        """Take up to ``requested`` tokens now; says how long to wait for more."""
        granted, wait_ms = await self._script(
            keys=self._keys, args=[self.rate, self.burst, requested]
        )
        return Grant(granted=int(granted), wait_s=int(wait_ms) / 1000)

    async def pause(self, seconds: float) -> None:
        """Grant nothing to any worker for ``seconds`` (a provider's Retry-After)."""
        if len(self._keys) > 1 and seconds > 0:
            await self._client.set(self._keys[1], b"1", px=max(1, int(seconds * 1000)))

    async def acquire(self, requested: int) -> int:
        """Wait until at least one token is granted; returns how many (≤ requested)."""
        while True:
            grant = await self.try_acquire(requested)
            if grant.granted > 0:
                return grant.granted
            await asyncio.sleep(grant.wait_s)

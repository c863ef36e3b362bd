"""Rate limits shared by all workers: token buckets in Redis, driven by one Lua script."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis.asyncio as aioredis

from sender.lua import RECIPIENT_CAPS, TOKEN_BUCKET

__all__ = ["CapCheck", "CapRule", "Grant", "RecipientCaps", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int
    wait_s: float


class TokenBucket:
    """``rate`` tokens per second up to ``burst``, one Redis key, any number of workers.

    :meth:`capped` adds more buckets that every grant must also fit (a lane's share, a
    campaign's pace); all are checked and debited in one atomic script call.
    """

    def __init__(
        self, client: aioredis.Redis, key: str, *, rate: float, burst: float,
        pausable: bool = False,
    ) -> None:
        self._client = client
        self._script = client.register_script(TOKEN_BUCKET)
        self._buckets: list[tuple[str, float, float]] = [(key, rate, burst)]
        self._pause = f"{key}:pause" if pausable else None
        self.rate = rate
        self.burst = burst

    def capped(self, key: str, *, rate: float, burst: float) -> TokenBucket:
        """This bucket and another one, both taken from by every grant."""
        other = TokenBucket.__new__(TokenBucket)
        other._client, other._script, other._pause = self._client, self._script, self._pause
        other._buckets = [*self._buckets, (key, rate, burst)]
        other.rate, other.burst = min(self.rate, rate), min(self.burst, burst)
        return other

    async def try_acquire(self, requested: int, minimum: int = 1) -> Grant:
        """Take up to ``requested`` tokens now (none if fewer than ``minimum`` are available);
        says how long to wait for more."""
        keys = [b[0] for b in self._buckets] + ([self._pause] if self._pause else [])
        args: list[float] = [requested, len(self._buckets)]
        for _, rate, burst in self._buckets:
            args += [rate, burst]
        args.append(max(1, min(minimum, requested)))
        granted, wait_ms = await self._script(keys=keys, args=args)
        return Grant(granted=int(granted), wait_s=int(wait_ms) / 1000)

    async def acquire(self, requested: int) -> int:
        """Wait until at least one token is granted; returns how many (≤ requested)."""
        while True:
            grant = await self.try_acquire(requested)
            if grant.granted > 0:
                return grant.granted
            await asyncio.sleep(grant.wait_s)

    async def pause(self, seconds: float) -> None:
        """Grant nothing to any worker for ``seconds`` (a provider's Retry-After)."""
        if self._pause is not None and seconds > 0:
            await self._client.set(self._pause, b"1", px=max(1, int(seconds * 1000)))


@dataclass(frozen=True, slots=True)
class CapRule:
    per_day: int
    per_24h: int
    min_spacing_s: float


@dataclass(frozen=True, slots=True)
class CapCheck:
    key: str
    message_key: str
    day_start_ms: int
    next_day_ms: int
    rule: CapRule


class RecipientCaps:
    """Per-recipient caps (local day, rolling 24 h, spacing) for a chunk in one Lua call."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._script = client.register_script(RECIPIENT_CAPS)

    async def check(self, checks: list[CapCheck]) -> list[float]:
        """For each check: 0 if allowed (now counted), else seconds until it would be."""
        if not checks:
            return []
        args: list[str | int | float] = []
        for c in checks:
            args += [c.message_key, c.day_start_ms, c.next_day_ms, c.rule.per_day,
                     c.rule.per_24h, int(c.rule.min_spacing_s * 1000)]
        waits = await self._script(keys=[c.key for c in checks], args=args)
        return [int(w) / 1000 for w in waits]

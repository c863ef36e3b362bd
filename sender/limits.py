"""Rate limits shared by all workers: token buckets in Redis, driven by one Lua script."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import redis.asyncio as aioredis

from sender.lua import RECIPIENT_CAPS, TOKEN_BUCKET

__all__ = ["CapCheck", "CapRule", "CapVerdict", "FairShare", "Grant", "RecipientCaps", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class FairShare:
    """A capacity shared fairly by whoever asks for it: ``key:<member>`` is each member's bucket,
    ``active_key`` the members that asked within the last ``window_s`` seconds."""

    key: str
    active_key: str
    rate: float
    burst: float
    window_s: float = 3.0


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int
    wait_s: float


class TokenBucket:
    """``rate`` tokens per second up to ``burst``, one Redis key, any number of workers.

    :meth:`capped` adds more buckets that every grant must also fit (a lane's share, a
    campaign's pace), :meth:`shared_by` a tenant's fair share; all are checked and debited in
    one atomic script call.
    """

    def __init__(
        self, client: aioredis.Redis, key: str, *, rate: float, burst: float,
        pausable: bool = False,
    ) -> None:
        self._client = client
        self._script = client.register_script(TOKEN_BUCKET)
        self._buckets: list[tuple[str, float, float]] = [(key, rate, burst)]
        self._pause = f"{key}:pause" if pausable else None
        self._fair: FairShare | None = None
        self._member = ""
        self.rate = rate
        self.burst = burst

    def capped(self, key: str, *, rate: float, burst: float) -> TokenBucket:
        """This bucket and another one, both taken from by every grant."""
        if self._fair is not None:
            raise ValueError("the fair-share bucket must be the last one added")
        other = TokenBucket.__new__(TokenBucket)
        other._client, other._script, other._pause = self._client, self._script, self._pause
        other._fair, other._member = None, ""
        other._buckets = [*self._buckets, (key, rate, burst)]
        other.rate, other.burst = min(self.rate, rate), min(self.burst, burst)
        return other

    def shared_by(self, share: FairShare, member: str) -> TokenBucket:
        """This bucket and ``member``'s fair share of ``share`` (1/k of its rate and burst
        while k members are active), all taken from by every grant."""
        other = self.capped(f"{share.key}:{member}", rate=share.rate, burst=share.burst)
        other._fair, other._member = share, member
        return other

    async def try_acquire(self, requested: int, minimum: int = 1) -> Grant:
        """Take up to ``requested`` tokens now (none if fewer than ``minimum`` are available);
        says how long to wait for more."""
        keys = [b[0] for b in self._buckets] + ([self._pause] if self._pause else [])
        window_ms = 0
        if self._fair is not None:
            keys.append(self._fair.active_key)
            window_ms = int(self._fair.window_s * 1000)
        args: list[float | str] = [requested, len(self._buckets), max(1, min(minimum, requested)),
                                   1 if self._pause else 0, self._member, window_ms]
        for _, rate, burst in self._buckets:
            args += [rate, burst]
        granted, wait_ms = await self._script(keys=keys, args=args)
        return Grant(granted=int(granted), wait_s=int(wait_ms) / 1000)

    async def acquire(self, requested: int) -> int:
        """Wait until at least one token is granted; returns how many (≤ requested)."""
        while True:
            grant = await self.try_acquire(requested)
            if grant.granted > 0:
                return grant.granted
            await asyncio.sleep(grant.wait_s)

    async def refund(self, tokens: int) -> None:
        """Give back tokens taken but not used (capped at the burst by the next grant)."""
        if tokens > 0:
            await self._client.hincrbyfloat(self._buckets[0][0], "tokens", tokens)

    async def paused(self) -> bool:
        """Whether a provider's Retry-After is running (see :meth:`pause`)."""
        return self._pause is not None and int(await self._client.pttl(self._pause)) > 0

    async def pause(self, seconds: float) -> None:
        """Grant nothing to any worker for ``seconds`` (a provider's Retry-After)."""
        if self._pause is not None and seconds > 0:
            await self._client.set(self._pause, b"1", px=max(1, int(seconds * 1000)))


@dataclass(frozen=True, slots=True)
class CapRule:
    """At most ``per_day`` per local day and ``per_24h`` per rolling day, ``min_spacing_s`` apart."""

    per_day: int
    per_24h: int
    min_spacing_s: float


@dataclass(frozen=True, slots=True)
class CapCheck:
    """One message against its recipient's caps (``key``: the recipient's sorted set), and the
    cap reservations of its local day (``reservations``: their hash, '' for none; see
    ``sender.reservations``) for ``recipient_id``, whose message of ``run_id`` takes its own."""

    key: str
    message_key: str
    day_start_ms: int
    next_day_ms: int
    rule: CapRule
    reservations: str = ""
    recipient_id: int = -1
    run_id: int = 0


@dataclass(frozen=True, slots=True)
class CapVerdict:
    """0 s: allowed (now counted); else seconds until it would be, and the run whose cap
    reservation alone holds it (None: a cap holds it)."""

    wait_s: float
    reserved_by: int | None = None


class RecipientCaps:
    """Per-recipient caps (local day, rolling 24 h, spacing) and cap reservations for a chunk
    in one Lua call."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._script = client.register_script(RECIPIENT_CAPS)

    async def check(self, checks: list[CapCheck]) -> list[float]:
        """For each check: 0 if allowed (now counted), else seconds until it would be."""
        return [v.wait_s for v in await self.verdicts(checks)]

    async def verdicts(self, checks: list[CapCheck]) -> list[CapVerdict]:
        """For each check, whether it is allowed (then counted) and what holds it."""
        if not checks:
            return []
        hashes = list(dict.fromkeys(c.reservations for c in checks if c.reservations))
        at = {key: n for n, key in enumerate(hashes, start=1)}
        args = json.dumps([[c.message_key, c.day_start_ms, c.next_day_ms, c.rule.per_day,
                            c.rule.per_24h, int(c.rule.min_spacing_s * 1000),
                            at.get(c.reservations, 0), c.recipient_id, c.run_id] for c in checks],
                          separators=(",", ":"))
        out = await self._script(keys=[c.key for c in checks] + hashes, args=[args])
        return [CapVerdict(int(out[i]) / 1000, int(out[i + 1]) or None)
                for i in range(0, len(out), 2)]

"""How long a provider may keep trying a message (its validity period). Pure.

A message is worth sending until its ``expires_at`` (an OTP's code lapses; a flash sale ends),
and a route may set a shorter default (``validity_s``). What reaches the provider is the lesser
of the two, clamped to what that provider's API takes (:class:`ValidityRange`), so it drops a
message it could not hand on in time instead of delivering a stale one. A message already
expired is not the adapter's business: the dispatcher fails those before any call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["ValidityRange", "utcnow", "validity_s"]


@dataclass(frozen=True, slots=True)
class ValidityRange:
    """The validity periods a provider's API accepts, in whole seconds, both ends included."""

    low_s: int
    high_s: int

    def clamp(self, seconds: int) -> int:
        return max(self.low_s, min(self.high_s, seconds))


def utcnow() -> datetime:
    """The adapters' clock (a parameter of theirs, so tests can fix it)."""
    return datetime.now(UTC)


def validity_s(route_s: int | None, expires_at: datetime | None, now: datetime,
               allowed: ValidityRange) -> int | None:
    """Seconds the provider may try: the lesser of the route's ``route_s`` and the whole seconds
    left until ``expires_at`` (a naive time is UTC), within ``allowed``; None when neither is
    set (the provider's default applies)."""
    limits: list[int] = [] if route_s is None else [route_s]
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        limits.append(math.floor((expires_at - now).total_seconds()))
    return allowed.clamp(min(limits)) if limits else None

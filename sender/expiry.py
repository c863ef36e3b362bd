"""When a message expires, and why. Pure.

A message's ``expires_at`` is either its time to live (an OTP's code, a geo offer, a
``validity_period``) or, for a campaign message (the bulk lane, with a campaign run), its
wave's deadline: the scheduler gives a campaign chunk no other expiry (``scheduler.deadline``),
so such a message that expires has met its deadline. No field on the wire or column says so:
records and rows written before the deadline was enforced read the same way.

A message is not handed to a provider within ``margin`` of its expiry: the call takes time, and
what the provider accepts should be accepted before the deadline, not while the request is on
its way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sender.models import Lane

__all__ = ["DEADLINE", "TTL_PASSED", "Expiring", "due", "reason"]

DEADLINE = "deadline"
TTL_PASSED = "ttl passed"


class Expiring(Protocol):
    @property
    def lane(self) -> Lane: ...

    @property
    def expires_at(self) -> datetime | None: ...

    @property
    def campaign_run_id(self) -> int | None: ...


def reason(row: Expiring) -> str:
    """Why ``row`` expires: ``deadline`` for a campaign message, ``ttl passed`` otherwise."""
    return DEADLINE if row.lane is Lane.BULK and row.campaign_run_id is not None else TTL_PASSED


R = TypeVar("R", bound=Expiring)


def due(rows: Sequence[R], now: datetime, margin: timedelta = timedelta(0)) -> list[R]:
    """The rows that may no longer go to a provider at ``now``."""
    limit = now + margin
    return [r for r in rows if r.expires_at is not None and r.expires_at <= limit]

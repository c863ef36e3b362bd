"""Look-ahead contact budget: per-recipient daily cap slots reserved by campaign runs, in Redis.

A run of a campaign marked ``priority: reserved`` reserves, for each recipient of its audience,
one slot of the recipient's daily cap on its send day in the recipient's zone; geo offers and
other campaigns' messages see that slot as used, the run's own message takes it. The scheduler
writes the reservations in pages (``scheduler.reserving``), the caps' script reads them in the
same call as the caps (``sender.lua.RECIPIENT_CAPS``, one call per chunk).

Redis layout, per tenant and local send date ``D`` (a hash tag keeps them in one slot):

- ``resv:{<tenant>:<D>}``: a hash, run id → its bit offset 0 (the run's first recipient id);
- ``resv:{<tenant>:<D>}:<run>``: a bitmap, bit ``recipient id − base`` set = reserved.

A 5M-recipient audience with dense ids is a 625 KB bitmap (its id span / 8). Both keys expire
once ``D`` has ended in every zone (:func:`expires_at`); a cancelled run's are deleted
(:meth:`CapReservations.drop`); the run's own message clears its bit when the caps count it.

The day a reservation belongs to is the one the caps count a message sent then in: the local
date, in the recipient's primary zone (``sender.quiet.primary_zone``: the profile's zone, else
the number's), of the instant its wave fires (:func:`reservation_day`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import chain
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from hexcast.core.cache import Keys
from sender.quiet import primary_zone

__all__ = [
    "CapReservations",
    "LocalDay",
    "Reserve",
    "expires_at",
    "index_key",
    "local_day",
    "offsets_by_day",
    "reservation_day",
]

_LAST_DAY_ENDS = timedelta(days=1, hours=12)
"""A date ends everywhere 36 h after it began in UTC: at its next midnight in UTC−12."""
_MARGIN = timedelta(hours=1)
_BITS_PER_COMMAND = 2_000  # BITFIELD SET operations sent in one command


@dataclass(frozen=True, slots=True)
class LocalDay:
    """A local calendar day in one zone: its date and its span in epoch milliseconds."""

    day: date
    start_ms: int
    next_ms: int


def local_day(at: datetime, zone: ZoneInfo) -> LocalDay:
    """The local day of the instant ``at`` in ``zone``: from its midnight (a midnight a
    spring-forward skips is the transition instant, a repeated one its first occurrence) to
    the next one's last occurrence (where clocks fall back just after midnight, as Goose Bay's
    did at 00:01, the repeated hour belongs to the earlier date and still ends before it)."""
    today = at.astimezone(zone).date()
    start = datetime.combine(today, time(0), zone).timestamp()
    after = max(datetime.combine(today + timedelta(days=1), time(0, fold=fold), zone).timestamp()
                for fold in (0, 1))  # as instants: aware times of one zone compare by wall time
    return LocalDay(today, int(start * 1000), int(after * 1000))


def reservation_day(at: datetime, phone: str, profile_zone: str | None) -> date:
    """The date whose cap a message sent at ``at`` counts in: local to the recipient's zone."""
    return local_day(at, primary_zone(phone, profile_zone)).day


def expires_at(day: date) -> datetime:
    """When the reservations of ``day`` are of no more use: the day is over in every zone."""
    return datetime.combine(day, time(0), UTC) + _LAST_DAY_ENDS + _MARGIN


def index_key(keys: Keys, tenant_id: int, day: date) -> str:
    """The hash of the runs reserving on ``day`` for ``tenant_id`` (bitmaps: ``<key>:<run>``)."""
    return keys("resv", f"{{{tenant_id}:{day.isoformat()}}}")


@dataclass(frozen=True, slots=True)
class Reserve:
    """One recipient to reserve: who, their profile zone, and when their wave fires."""

    recipient_id: int
    phone: str
    profile_zone: str | None
    fire_at: datetime


def offsets_by_day(items: Iterable[Reserve], base: int) -> dict[date, list[int]]:
    """Bit offsets (``recipient id − base``) per local send date; ids below ``base`` (none,
    when ``base`` is the audience's first id) are left out."""
    out: dict[date, list[int]] = {}
    for item in items:
        if item.recipient_id >= base:
            day = reservation_day(item.fire_at, item.phone, item.profile_zone)
            out.setdefault(day, []).append(item.recipient_id - base)
    return out


class CapReservations:
    """Writes and drops runs' reservations (the caps' script reads them)."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    async def add(self, *, tenant_id: int, run_id: int, base: int,
                  offsets: Mapping[date, Sequence[int]]) -> None:
        """Set the bits of ``offsets`` (per local date) for ``run_id``, with their expiry;
        idempotent (a page written again sets the same bits)."""
        pipe = self._client.pipeline(transaction=False)
        for day, bits in offsets.items():
            index = index_key(self._keys, tenant_id, day)
            bitmap, until = f"{index}:{run_id}", int(expires_at(day).timestamp())
            for start in range(0, len(bits), _BITS_PER_COMMAND):
                ops = chain.from_iterable(("SET", "u1", b, 1)
                                          for b in bits[start:start + _BITS_PER_COMMAND])
                pipe.execute_command("BITFIELD", bitmap, *ops)
            pipe.hset(index, str(run_id), str(base))
            pipe.expireat(bitmap, until)
            pipe.expireat(index, until)
        await pipe.execute()

    async def drop(self, *, tenant_id: int, run_id: int, days: Iterable[date]) -> None:
        """Release every reservation of ``run_id`` (a cancelled run)."""
        pipe = self._client.pipeline(transaction=False)
        for day in days:
            index = index_key(self._keys, tenant_id, day)
            pipe.hdel(index, str(run_id))
            pipe.delete(f"{index}:{run_id}")
        await pipe.execute()

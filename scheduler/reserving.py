"""Look-ahead contact budget, the scheduler's part (issue 22, item 5).

A run of a campaign with ``priority: reserved`` reserves each recipient's daily cap slot for its
send day in the recipient's zone (``sender.reservations``: Redis bitmaps per tenant, local date
and run, keyed by recipient id); geo offers and other campaigns see the slot as used, the run's
own message takes it.

- :func:`ahead`: such a run is created up to :data:`RESERVE_AHEAD` before its first wave fires
  (``scheduler.service.due_fire``), so the reservation is in place before the send day begins
  in any recipient's zone (a local date begins at most 24 h before an instant in it).
- :func:`start`: at run creation, a reservation row to fill (none when the tenant turned
  ``reserve_caps`` off): the API request writes one row, never millions of bits.
- :class:`Reserver`: the scheduler loop fills reservations page by page (keyset over the
  audience, like the release), each page under its row's lock, a second of work per tick.
- :func:`release_cancelled`: a cancelled run's bitmaps are deleted (the API's cancel; the
  filler does the same when it meets a cancelled run).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from hexcast.core.db import PG_OUTAGES, Conn
from hexcast.core.errors import NotFound
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from scheduler import repo
from scheduler.service import Campaign
from sender import (
    CapReservations,
    Reserve,
    advance_reservation,
    claim_filling,
    finish_filling,
    offsets_by_day,
    release_reservations,
    start_reservation,
)
from targeting import audience_query

__all__ = ["RESERVED", "RESERVE_AHEAD", "Reserver", "ahead", "drop", "page_items",
           "release_cancelled", "start"]

log = get_logger("hexcast.scheduler")
RESERVED = "reserved"
RESERVE_AHEAD = timedelta(hours=24)
_PAGE = 10_000  # recipients a page (one audience query, one Redis round trip)
_BUDGET_S = 1.0  # filling work per scheduler tick


def ahead(c: Campaign) -> timedelta:
    """How long before its first wave fires a run of ``c`` is created."""
    return RESERVE_AHEAD if c.priority == RESERVED else timedelta(0)


async def start(conn: Conn, c: Campaign, run_id: int) -> bool:
    """A reservation to fill for the new run ``run_id`` of ``c``, if it reserves."""
    if c.priority != RESERVED:
        return False
    return await start_reservation(conn, run_id=run_id, tenant_id=c.tenant_id)


def page_items(c: Campaign, waves: list[Any], rows: list[Any]) -> list[Reserve]:
    """What to reserve of an audience page: every recipient not held out, at the instant its
    wave fires (recipient_local: its zone's wave; a zone the run has no wave for, new since the
    run was planned, is not released either, so it is skipped)."""
    fires: dict[str | None, datetime] = {w["time_zone"]: w["fire_at"] for w in waves}
    out = []
    for r in rows:
        fire = fires.get(r["wave_zone"] if c.local else None)
        if not r["holdout"] and fire is not None:
            out.append(Reserve(r["id"], r["phone"], r["profile_zone"], fire))
    return out


async def _page(conn: Conn, c: Campaign, *, as_of: datetime, resolution: int, after_id: int,
                limit: int) -> list[asyncpg.Record]:
    """An audience page with each recipient's own profile zone (the sender's zone rule)."""
    sql, args = audience_query(
        c.segment, tenant_id=c.tenant_id, campaign_id=c.id, fallback_zone=c.time_zone,
        as_of=as_of, resolution=resolution, zone=None, after_id=after_id, limit=limit)
    return list(await conn.fetch(
        "SELECT a.id, a.phone, a.time_zone AS wave_zone, a.holdout, r.time_zone AS profile_zone"
        f" FROM ({sql}) a JOIN recipients r ON r.id = a.id ORDER BY a.id", *args))


class Reserver:
    """Fills the reservations of reserved runs, page by page, in the scheduler loop."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, reservations: CapReservations,
                 *, page: int = _PAGE) -> None:
        self._settings = settings
        self._pool = pool
        self._reservations = reservations
        self._size = page
        self._run_id = 0  # the run whose page is being written

    async def fill(self, budget_s: float = _BUDGET_S) -> int:
        """Write pages for up to ``budget_s``; returns how many. A reservation whose page
        fails on its data is given up (logged), so it never holds the others back."""
        stop, pages = time.monotonic() + budget_s, 0
        while time.monotonic() < stop:
            try:
                if not await self._one_page():
                    break
            except PG_OUTAGES:
                raise
            except (asyncpg.PostgresError, ValueError, KeyError, NotFound) as exc:
                await self._give_up(self._run_id, exc)
            pages += 1
        return pages

    async def _one_page(self) -> bool:
        """One page of the first reservation nobody else is filling; False if there is none."""
        async with self._pool.acquire() as conn, conn.transaction():
            claim = await claim_filling(conn)
            if claim is None:
                return False
            run_id = self._run_id = claim["run_id"]
            run = await repo.get_run(conn, run_id=run_id)
            if run["state"] == "cancelled":
                await drop(conn, self._reservations, [run_id])
                return True
            c = Campaign.from_row(await repo.get_campaign(
                conn, tenant_id=None, campaign_id=run["campaign_id"]))
            rows = await _page(conn, c, as_of=run["first_fire_at"],
                               resolution=self._settings.h3_resolution,
                               after_id=claim["cursor_id"], limit=self._size)
            if not rows:
                await finish_filling(conn, run_id=run_id)
                log.info("reservation_filled", tenant_id=c.tenant_id, run_id=run_id)
                return True
            base = rows[0]["id"] if claim["base_id"] is None else claim["base_id"]
            items = page_items(c, await repo.waves_of(conn, run_ids=[run_id]), rows)
            offsets = offsets_by_day(items, base)
            await self._reservations.add(tenant_id=c.tenant_id, run_id=run_id, base=base,
                                         offsets=offsets)
            await advance_reservation(conn, run_id=run_id, cursor_id=rows[-1]["id"], base_id=base,
                                      days=list(offsets),
                                      reserved=sum(len(v) for v in offsets.values()))
        return True

    async def _give_up(self, run_id: int, exc: Exception) -> None:
        async with self._pool.acquire() as conn:
            await finish_filling(conn, run_id=run_id)
        log.error("reservation_given_up", run_id=run_id, error=f"{type(exc).__name__}: {exc}"[:500])


async def drop(conn: Conn, reservations: CapReservations, run_ids: list[int]) -> int:
    """Release the reservations of ``run_ids`` (waiting for a page being written) and delete
    their bitmaps; returns how many runs had some."""
    released = await release_reservations(conn, run_ids=run_ids)
    for r in released:
        await reservations.drop(tenant_id=r.tenant_id, run_id=r.run_id, days=r.days)
        log.info("reservation_released", tenant_id=r.tenant_id, run_id=r.run_id, days=len(r.days))
    return len(released)


async def release_cancelled(pool: asyncpg.Pool, reservations: CapReservations, *,
                            campaign_id: int) -> int:
    """Drop the reservations of the campaign's cancelled runs; returns how many runs had some."""
    async with pool.acquire() as conn:
        runs = await repo.list_runs(conn, campaign_id=campaign_id)
        return await drop(conn, reservations, [r["id"] for r in runs if r["state"] == "cancelled"])

"""The ``scheduler`` process: creates due runs, claims due waves, releases them in chunks.

Any number of replicas may run. A wave is claimed with ``FOR UPDATE SKIP LOCKED`` and held by
a lease renewed at every checkpoint; a replica that dies loses the lease and another resumes
from the checkpointed cursor. A chunk is published (broker ack) before its checkpoint, so a
crash in between republishes it under the same record key and message keys, which the
sender's dedupe absorbs: at least once, effectively once.

Waves of different runs are released side by side (one task each); a run's own waves one after
another, in the plan's order (``scheduler.repo.claim_wave``), as the forecast serves them.
Each wave stays only a couple of chunks (per wave of its run that has fired) ahead of what the
senders have settled, so runs of different tenants are interleaved on send.bulk instead of one
run's backlog sitting in front of another's.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from hexcast.core.bus import Bus
from hexcast.core.cache import REDIS_OUTAGES, Keys, connect_redis
from hexcast.core.control import RunControl, RunState
from hexcast.core.db import PG_OUTAGES, connect_pool
from hexcast.core.errors import HexcastError
from hexcast.core.kafka_lag import LAG_REFRESH_S, ConsumerLag
from hexcast.core.logging import get_logger
from hexcast.core.metrics import refresh_every
from hexcast.core.retry import until_available
from hexcast.core.settings import Settings
from scheduler import repo
from scheduler.deadline import chunk_expiry, cut_off
from scheduler.lifecycle import Lifecycle
from scheduler.metrics import REFRESH_S, RELEASED, refresh_campaign_gauges
from scheduler.reserving import Reserver, ahead
from scheduler.runs import audience_page, create_run
from scheduler.service import Campaign, chunk_key, chunk_record, chunk_size, due_fire
from sender import CapReservations, RouteControl, prune_messages_every, release_due, settled_count

__all__ = ["Scheduler", "run_scheduler"]

log = get_logger("hexcast.scheduler")
_LEAD_S = 2.0  # how far release may run ahead of the paced rate
_MAX_WAVES = 32  # waves one scheduler releases side by side
_STEP_S = 0.2  # how often a waiting wave looks at the senders' progress
_BACKLOG_WAIT_S = 30.0  # a chunk the senders do not settle by then no longer holds its wave
_INFRA = PG_OUTAGES + REDIS_OUTAGES
"""Outages: they end a tick instead of skipping a campaign."""
_SETTLE_SAMPLE = 16  # message keys of a chunk probed to tell whether the senders settled it
_CUT_PAGE = 10_000  # recipients counted a statement when a wave is cut at its deadline


class Scheduler:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, bus: Bus, control: RunControl,
                 reservations: CapReservations | None = None, *, routes: RouteControl) -> None:
        self.settings = settings
        self.pool = pool
        self.bus = bus
        self.control = control
        self.routes = routes
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._waves: set[asyncio.Task[None]] = set()
        self._active: set[int] = set()  # ids of the waves those tasks release
        self.lifecycle = Lifecycle(settings, pool)
        self.reserver = Reserver(settings, pool, reservations) if reservations else None

    async def tick(self) -> int:
        """Create due runs, start releasing every due wave nobody holds (each in its own task,
        so waves of different runs and tenants are released side by side), then requeue
        deferred messages now due (quiet hours, caps, paused runs) and look at unfinished runs
        (``scheduler.lifecycle``); returns the waves started."""
        await self.create_due_runs()
        if self.reserver is not None:
            await self.reserver.fill()  # reserved runs' cap reservations, a page at a time
        started = 0
        while len(self._waves) < _MAX_WAVES and (claim := await self._claim()) is not None:
            wave_id = claim[2]["id"]
            if wave_id in self._active:  # its lease lapsed under us; the claim renewed it
                continue
            self._active.add(wave_id)
            task = asyncio.create_task(self._release(*claim))
            self._waves.add(task)
            task.add_done_callback(partial(self._wave_done, wave_id))
            started += 1
        await release_due(self.pool, self.bus, self.settings, now=datetime.now(UTC))
        await self.lifecycle.maybe_step()  # finished runs, zones at risk
        return started

    def _wave_done(self, wave_id: int, task: asyncio.Task[None]) -> None:
        self._waves.discard(task)
        self._active.discard(wave_id)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The claim lapses with its lease; this or another replica resumes the wave.
            log.warning("wave_release_failed", error=f"{type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        """Stop releasing (the claims lapse with their leases; any replica resumes them)."""
        for task in list(self._waves):
            task.cancel()
        await asyncio.gather(*self._waves, return_exceptions=True)

    async def create_due_runs(self) -> None:
        """Create the due run of every active campaign. A campaign that cannot be planned (a
        row its model refuses, such as an unknown time zone, or a statement failing on its
        data) is logged and skipped, and the others' runs are still created; a PostgreSQL or
        Redis outage ends the tick, which the next one retries."""
        now = datetime.now(UTC)
        grace = timedelta(seconds=self.settings.scheduler_misfire_grace_s)
        async with self.pool.acquire() as conn:
            for row in await repo.active_campaigns(conn):
                try:
                    c = Campaign.from_row(row)
                    last = await repo.last_run(conn, campaign_id=c.id)
                    fire = due_fire(c, last=last, now=now, grace=grace, ahead=ahead(c))
                    if fire is not None:
                        await create_run(conn, self.control, c, fire, self.settings,
                                         routes=self.routes)
                except _INFRA:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad campaign must not stop the rest
                    log.error("campaign_skipped", campaign_id=row["id"], tenant_id=row["tenant_id"],
                              error=f"{type(exc).__name__}: {exc}"[:500])

    async def _claim(self) -> tuple[Campaign, Any, Any] | None:
        s = self.settings
        async with self.pool.acquire() as conn:
            wave = await repo.claim_wave(conn, owner=self.owner, lease_s=s.scheduler_lease_s)
            if wave is None:
                return None
            run = await repo.get_run(conn, run_id=wave["run_id"])
            c = Campaign.from_row(await repo.get_campaign(
                conn, tenant_id=None, campaign_id=run["campaign_id"]))
        log.info("wave_claimed", tenant_id=c.tenant_id, campaign_id=c.id, run_id=run["id"],
                 wave_id=wave["id"], zone=wave["time_zone"], cursor=wave["cursor_id"])
        await self.control.set_state(run["id"], RunState.RUNNING)
        return c, run, wave

    async def _release(self, c: Campaign, run: Any, wave: Any) -> None:
        """Release the wave; a PostgreSQL or Redis outage pauses it (``scheduling_paused``),
        and once they answer it goes on from its checkpoint if the claim is still this
        replica's (the chunk published but not checkpointed goes again: same keys, deduped)."""
        while True:
            try:
                await self._release_from(c, run, wave)
                return
            except _INFRA as exc:
                log.warning("scheduling_paused", wave_id=wave["id"], error=f"{type(exc).__name__}: {exc}")
            wave = await until_available(partial(self._keep_claim, wave["id"]), errors=_INFRA,
                                         log=log, event="scheduling_paused")
            if wave is None:
                log.warning("wave_claim_lost", campaign_id=c.id, run_id=run["id"])
                return

    async def _keep_claim(self, wave_id: int) -> Any:
        async with self.pool.acquire() as conn:
            return await repo.keep_claim(conn, wave_id=wave_id, owner=self.owner,
                                         lease_s=self.settings.scheduler_lease_s)

    async def _release_from(self, c: Campaign, run: Any, wave: Any) -> None:
        s, run_id, wave_id = self.settings, run["id"], wave["id"]
        cursor, sent, started = wave["cursor_id"], 0, time.monotonic()
        rate = run["rate_per_s"] or s.provider_rate_per_s * s.sender_bulk_share
        size, paced = chunk_size(rate, s.scheduler_chunk_size)
        unsettled: deque[list[str]] = deque()  # message keys of chunks published, oldest first
        # the run's waves are released one at a time: this one may hold the chunks of every
        # wave of its run that has fired (as many as they would side by side)
        allowance = s.scheduler_backlog_chunks * max(1, wave["due_waves"])
        expires_at = chunk_expiry(c, wave["deadline_at"])
        cut_at = None if expires_at is None else started + (
            expires_at - datetime.now(UTC)).total_seconds()
        while True:
            async with self.pool.acquire() as conn:
                if await repo.run_state(conn, run_id=run_id) != "running":
                    await repo.release_claim(conn, wave_id=wave_id, owner=self.owner)
                    log.info("wave_stopped", campaign_id=c.id, run_id=run_id, wave_id=wave_id)
                    return
                if cut_off(c, wave["deadline_at"], datetime.now(UTC)):  # (a paused run: on resume)
                    break
                rows = await audience_page(
                    conn, c, as_of=run["first_fire_at"], resolution=s.h3_resolution,
                    zone=wave["time_zone"], after_id=cursor, limit=size)
            if not rows:
                await self._finish(c, run_id, wave_id)
                return
            send = [r for r in rows if not r["holdout"]]
            if send:
                record = chunk_record(c, run_id=run_id, rows=send, now=datetime.now(UTC),
                                      expires_at=expires_at, paced=paced)
                await self.bus.publish(c.lane.topic, chunk_key(run_id, wave_id, cursor), record.encode())
                RELEASED.labels(str(c.tenant_id), str(c.id)).inc(len(send))
                unsettled.append([i.message_key for i in record.items])
            async with self.pool.acquire() as conn:
                kept = await repo.checkpoint(
                    conn, wave_id=wave_id, owner=self.owner, lease_s=s.scheduler_lease_s,
                    cursor_id=rows[-1]["id"], released=len(send), run_id=run_id,
                    held_out=[r["id"] for r in rows if r["holdout"]])
            if not kept:
                log.warning("wave_claim_lost", campaign_id=c.id, run_id=run_id, wave_id=wave_id)
                return
            cursor, sent = rows[-1]["id"], sent + len(send)
            # ahead by a chunk more than _LEAD_S: the senders have the next chunk before this
            # one runs out (a paced chunk lasts seconds; its senders may run a window early)
            ahead_s = (sent - size) / rate - (time.monotonic() - started)
            if not await self._pace(wave_id, ahead_s, unsettled, allowance, cut_at):
                return
        await self._cut(c, run, wave, cursor)

    async def _pace(self, wave_id: int, ahead_s: float, unsettled: deque[list[str]],
                    allowance: int, cut_at: float | None = None) -> bool:
        """Wait until the wave is at most ``_LEAD_S`` ahead of its run's rate and at most
        ``allowance`` of its chunks are not yet settled by the senders (or the
        oldest has held it up for ``_BACKLOG_WAIT_S``), renewing the lease while waiting.
        The second bound keeps send.bulk short, so another tenant's chunk released now is
        not queued behind this run's backlog. ``cut_at`` (monotonic): the wave's deadline, when
        it is a cut-off; the wait ends there."""
        now = time.monotonic()
        deadline, give_up = now + ahead_s - _LEAD_S, now + _BACKLOG_WAIT_S
        lease = self.settings.scheduler_lease_s
        renew_at = now + lease / 3
        while True:
            now = time.monotonic()
            if cut_at is not None and now >= cut_at:
                return True
            if now >= deadline and (now >= give_up or await self._caught_up(unsettled, allowance)):
                return True
            await asyncio.sleep(min(_STEP_S, max(deadline - now, 0.0) or _STEP_S))
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + lease / 3
                async with self.pool.acquire() as conn:
                    if not await repo.renew_lease(conn, wave_id=wave_id, owner=self.owner,
                                                  lease_s=lease):
                        log.warning("wave_claim_lost", wave_id=wave_id)
                        return False

    async def _caught_up(self, unsettled: deque[list[str]], allowance: int) -> bool:
        """Drop the chunks the senders have settled; True if few enough are left.

        A chunk counts as settled when an evenly spaced sample of its message keys is (the
        whole chunk, 1,000 index probes polled five times a second by every waiting wave,
        was a tenth of PostgreSQL's work in a bulk run); the bound is a pacing aid, not a
        guarantee, and a sender works on a chunk's slices side by side."""
        while len(unsettled) > allowance:
            probe = _sample(unsettled[0], _SETTLE_SAMPLE)
            async with self.pool.acquire() as conn:
                done = await settled_count(conn, message_keys=probe)
            if done < len(probe):
                return False
            unsettled.popleft()
        return True

    async def _cut(self, c: Campaign, run: Any, wave: Any, cursor: int) -> None:
        """The wave's deadline has passed: what is left is never released. It is counted on the
        wave (``expired``; holdouts recorded as usual) page by page from the cursor, without a
        message row each, and the wave is finished."""
        s, run_id, wave_id, cut = self.settings, run["id"], wave["id"], 0
        while True:
            async with self.pool.acquire() as conn:
                rows = await audience_page(
                    conn, c, as_of=run["first_fire_at"], resolution=s.h3_resolution,
                    zone=wave["time_zone"], after_id=cursor, limit=_CUT_PAGE)
                if not rows:
                    break
                page = sum(1 for r in rows if not r["holdout"])
                kept = await repo.checkpoint(
                    conn, wave_id=wave_id, owner=self.owner, lease_s=s.scheduler_lease_s,
                    cursor_id=rows[-1]["id"], released=0, run_id=run_id, expired=page,
                    held_out=[r["id"] for r in rows if r["holdout"]])
            if not kept:
                log.warning("wave_claim_lost", campaign_id=c.id, run_id=run_id, wave_id=wave_id)
                return
            cursor, cut = rows[-1]["id"], cut + page
        log.info("wave_cut_at_deadline", tenant_id=c.tenant_id, campaign_id=c.id, run_id=run_id,
                 wave_id=wave_id, zone=wave["time_zone"], expired=cut)
        await self._finish(c, run_id, wave_id)

    async def _finish(self, c: Campaign, run_id: int, wave_id: int) -> None:
        async with self.pool.acquire() as conn:
            released = await repo.finish_wave(conn, wave_id=wave_id, owner=self.owner, run_id=run_id)
        log.info("wave_released", tenant_id=c.tenant_id, campaign_id=c.id, run_id=run_id,
                 wave_id=wave_id, run_released=released)


def _sample(keys: list[str], n: int) -> list[str]:
    """``n`` evenly spaced keys of ``keys``, first and last included (all, if fewer)."""
    if len(keys) <= n:
        return keys
    step = (len(keys) - 1) / (n - 1)
    return [keys[round(i * step)] for i in range(n)]


async def _tick(scheduler: Scheduler) -> None:
    """One tick; while PostgreSQL or Redis is unreachable, retried with backoff (logged as
    ``scheduling_paused``: nothing is created, claimed or released, and the waves whose
    release stopped lose their leases and are claimed again from their checkpoints). Any
    other failure ends the tick; the next one tries again."""
    try:
        await until_available(scheduler.tick, errors=_INFRA, log=log, event="scheduling_paused")
    except (asyncpg.PostgresError, HexcastError, RedisError) as exc:
        log.warning("scheduler_retry", error=f"{type(exc).__name__}: {exc}")


async def run_scheduler(settings: Settings) -> None:
    """The process: tick every ``scheduler_poll_s`` until cancelled."""
    pool = await connect_pool(settings.database_url, max_size=4)
    redis = connect_redis(settings.redis_url)
    bus = Bus(settings)
    await bus.start()
    keys = Keys(settings.redis_prefix)
    scheduler = Scheduler(settings, pool, bus, RunControl(redis, keys),
                          CapReservations(redis, keys), routes=RouteControl(redis, keys))
    lag = ConsumerLag(settings)
    gauges = [  # this process's gauges (see scheduler.metrics, hexcast.core.kafka_lag)
        asyncio.create_task(refresh_every(REFRESH_S, partial(refresh_campaign_gauges, settings, pool),
                                          name="campaigns")),
        asyncio.create_task(refresh_every(LAG_REFRESH_S, lag.refresh, name="kafka_consumer_lag")),
    ]
    # Not a gauge, stopped with them: the message log's retention (sender.retention).
    gauges.append(asyncio.create_task(prune_messages_every(pool, settings)))
    log.info("scheduler_started", owner=scheduler.owner)
    try:
        while True:
            await _tick(scheduler)
            await asyncio.sleep(settings.scheduler_poll_s)
    finally:
        for task in gauges:
            task.cancel()
        await asyncio.gather(*gauges, return_exceptions=True)
        await lag.close()
        await scheduler.stop()
        await bus.stop()
        await redis.aclose()
        await pool.close()

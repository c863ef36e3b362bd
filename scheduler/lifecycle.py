"""Run lifecycle and live progress, read from the runs' tallies (see ``scheduler.progress``).

:func:`snapshots` gives each unfinished run's tally, measured rate and per-zone projection
(the api's ``GET /v1/campaigns/{id}/runs``, the scheduler's gauges and the CLI read it);
:class:`Lifecycle` is the scheduler loop's part: it finishes the runs that are over (counts,
end time, ``campaign.finished`` once) and marks zones projected to miss their deadline
(``campaign.at_risk`` once per zone and run).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hexcast.core.db import PG_OUTAGES, Conn
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from scheduler import lifecycle_repo as lrepo
from scheduler.forecast import QuietHours
from scheduler.progress import (
    MEASURE_WINDOW_S,
    Tally,
    ZoneProjection,
    ZoneState,
    end_state,
    is_finished,
    measured_rate,
    measuring_window,
    project,
)
from sender import DEFAULT_WINDOW, Window, narrowed

__all__ = ["Lifecycle", "RunSnapshot", "snapshots"]

log = get_logger("hexcast.scheduler")
_EVERY_S = 2.0  # how often the scheduler loop looks at unfinished runs
_FOLD_ROWS = 500  # a run's tally rows beyond which the old ones are folded into one
_FOLD_AGE_S = 2 * MEASURE_WINDOW_S  # rows younger than this are kept as they are (the rate)


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    run: Any  # the row of lifecycle_repo.unfinished_runs
    waves: list[Any]  # rows of lifecycle_repo.lifecycle_waves
    tally: Tally
    tally_rows: int
    rate_per_s: float  # measured (the planned rate while there is no measure)
    measured: bool
    zones: list[ZoneProjection]

    @property
    def released(self) -> int:
        return sum(w["released"] for w in self.waves)

    @property
    def all_released(self) -> bool:
        return bool(self.run["released"]) or self.run["state"] == "cancelled"


def quiet_hours(quiet_start: Any, quiet_end: Any) -> QuietHours:
    """The hours a campaign cannot send in its recipients' zones: outside the legal window,
    narrowed by the tenant's own (the sender's rule, ``sender.quiet``)."""
    tenant = Window(quiet_start, quiet_end) if quiet_start and quiet_end else None
    window = narrowed(DEFAULT_WINDOW, tenant) or DEFAULT_WINDOW
    return QuietHours(window.end, window.start)


def _planned(run: Any) -> dict[str | None, int]:
    """Sendable messages per zone as planned when the run was created (its forecast)."""
    waves = run["planned"] if isinstance(run["planned"], list) else []
    return {w.get("time_zone"): int(w.get("messages") or 0) for w in waves if isinstance(w, dict)}


def _zones(run: Any, waves: list[Any]) -> list[ZoneState]:
    planned = _planned(run)
    return [ZoneState(w["id"], w["time_zone"], w["fire_at"], w["deadline_at"],
                      planned.get(w["time_zone"], w["released"]), w["released"], w["state"],
                      w["started_at"], w["finished_at"]) for w in waves]


async def snapshots(conn: Conn, *, quiet_hours_on: bool, run_ids: list[int] | None = None
                    ) -> list[RunSnapshot]:
    """Every unfinished, unpaused run (or those of ``run_ids``) with its progress; quiet hours
    count when the senders keep them (``sender_quiet_hours``)."""
    runs = [] if run_ids == [] else await lrepo.unfinished_runs(conn, run_ids=run_ids)
    if not runs:
        return []
    now: datetime = await conn.fetchval("SELECT now()")
    waves = await lrepo.lifecycle_waves(conn, run_ids=[r["id"] for r in runs])
    zones, windows = {}, {}
    for r in runs:
        zones[r["id"]] = _zones(r, [w for w in waves if w["run_id"] == r["id"]])
        quiet = quiet_hours(r["quiet_start"], r["quiet_end"]) if quiet_hours_on else None
        windows[r["id"]] = measuring_window(zones[r["id"]], now=now, quiet=quiet,
                                            default_zone=r["campaign_zone"])
    found = await lrepo.tallies(conn, windows={k: v or MEASURE_WINDOW_S for k, v in windows.items()})
    return [_snapshot(r, [w for w in waves if w["run_id"] == r["id"]], zones[r["id"]],
                      windows[r["id"]], found.get(r["id"]), now, quiet_hours_on) for r in runs]


def _snapshot(run: Any, waves: list[Any], zones: list[ZoneState], window_s: float | None,
              row: Any, now: datetime, quiet_hours_on: bool) -> RunSnapshot:
    tally = Tally() if row is None else Tally(row["settled"], row["final"], row["recent"],
                                              row["idle_s"])
    backlog = max(sum(z.released for z in zones) - tally.settled, 0)
    # idle by plan: nothing with the senders and no wave due (releasing, or fired and waiting
    # for the one before it or for its claim)
    idle = backlog == 0 and not any(z.releasing or (not z.released_all and z.fire_at <= now)
                                    for z in zones)
    rate = measured_rate(tally.recent, window_s=window_s, planned_rate=run["rate_per_s"] or 0.0,
                         idle=idle)
    projected = project(zones, backlog=backlog, rate=rate, now=now,
                        quiet=quiet_hours(run["quiet_start"], run["quiet_end"])
                        if quiet_hours_on else None,
                        default_zone=run["campaign_zone"])
    return RunSnapshot(run, waves, tally, 0 if row is None else row["n"], rate,
                       window_s is not None and not idle, projected)


class Lifecycle:
    """The scheduler loop's look at unfinished runs, at most every ``_EVERY_S``. Any number of
    replicas may do it: finishing and marking are conditional updates, each done once."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool
        self._next = 0.0

    async def maybe_step(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + _EVERY_S
        await self.step()

    async def step(self) -> None:
        """Finish the runs that are over and mark the zones at risk. A run that cannot be
        looked at (a statement failing on its data, a value the projection refuses) is logged
        and skipped, never the scheduler's end; a PostgreSQL outage ends the tick."""
        async with self.pool.acquire() as conn:
            try:
                found = await snapshots(conn, quiet_hours_on=self.settings.sender_quiet_hours)
            except PG_OUTAGES:
                raise
            except Exception as exc:  # noqa: BLE001 - releasing must go on regardless
                log.error("run_lifecycle_failed", error=f"{type(exc).__name__}: {exc}"[:500])
                return
            for snap in found:
                try:
                    await self._look(conn, snap)
                except PG_OUTAGES:
                    raise
                except Exception as exc:  # noqa: BLE001 - one run's trouble must not stop the rest
                    log.error("run_lifecycle_failed", run_id=snap.run["id"],
                              error=f"{type(exc).__name__}: {exc}"[:500])

    async def _look(self, conn: Conn, snap: RunSnapshot) -> None:
        run_id = snap.run["id"]
        if snap.tally_rows > _FOLD_ROWS:
            await lrepo.fold_tallies(conn, run_id=run_id, older_than_s=_FOLD_AGE_S)
        if is_finished(released=snap.released, all_released=snap.all_released, tally=snap.tally,
                       receipt_wait_s=self.settings.campaign_receipt_wait_s):
            await self._finish(conn, snap)
        elif snap.run["state"] == "running":
            await self._at_risk(conn, snap)

    async def _finish(self, conn: Conn, snap: RunSnapshot) -> None:
        run = snap.run
        counts = await lrepo.message_counts(conn, run_id=run["id"])
        cut = sum(w["expired"] for w in snap.waves)
        state = end_state(run["state"], counts, cut)
        if await lrepo.record_finish(conn, run_id=run["id"], from_state=run["state"], state=state,
                                     counts=counts):
            log.info("run_finished", tenant_id=run["tenant_id"], campaign_id=run["campaign_id"],
                     run_id=run["id"], state=state, counts=counts, cut_at_deadline=cut)

    async def _at_risk(self, conn: Conn, snap: RunSnapshot) -> None:
        marked = {w["id"] for w in snap.waves if w["at_risk_at"] is not None}
        for z in snap.zones:
            if not z.at_risk or z.wave_id in marked:
                continue
            projection = {"remaining": z.remaining, "rate_per_s": round(z.rate_per_s, 3),
                          "projected_finish_at": _iso(z.projected_finish_at),
                          "late_s": None if z.projected_finish_at is None else round(z.late_s, 1)}
            if await lrepo.mark_at_risk(conn, wave_id=z.wave_id, projection=projection):
                log.warning("campaign_at_risk", tenant_id=snap.run["tenant_id"],
                            campaign_id=snap.run["campaign_id"], run_id=snap.run["id"],
                            zone=z.time_zone, deadline_at=_iso(z.deadline_at), **projection)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()

"""A campaign as the console shows it: its runs, the latest one's waves per zone on a timeline
(plan against what happened or is projected), counts by state, clicks and opt-outs, and the
planned against the actual curve; and the pause, resume and cancel actions.

Counting a run's messages by state reads every message of the run (by its index): done only
for runs of at most :data:`STATS_LIMIT` recipients, at most every 10 s per api process; a
larger run shows its tallies while it sends and the counts it recorded when it finished.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from markupsafe import Markup

from hexcast.console import charts, queries
from hexcast.console.sessions import Principal
from hexcast.core.cache import Keys
from hexcast.core.control import RunControl
from hexcast.core.db import Conn
from hexcast.core.settings import Settings
from scheduler import (
    Audit,
    CampaignAction,
    RunSnapshot,
    change_state,
    get_campaign,
    list_runs,
    snapshots,
)
from sender import CapReservations, RunMessageStats, run_message_stats

__all__ = ["STATS_LIMIT", "CampaignView", "RunView", "act", "actions_for", "campaign_view"]

STATS_LIMIT = 20_000
_RUNS_SHOWN = 5
_STATS_TTL_S = 10.0
"""A run's counts are read at most this often per api process, however many pages poll."""
_stats_memo: dict[int, tuple[float, RunMessageStats]] = {}


@dataclass(frozen=True, slots=True)
class RunView:
    run: Any
    waves: list[Any]
    snapshot: RunSnapshot | None
    stats: RunMessageStats | None
    counts: dict[str, int]
    settled: int
    total: int


@dataclass(frozen=True, slots=True)
class CampaignView:
    campaign: Any
    runs: list[RunView]  # newest first
    timeline: Markup
    curve: Markup
    now: datetime


def actions_for(state: str) -> list[str]:
    """The actions a campaign in ``state`` takes (``scheduler.campaign_state``'s moves)."""
    return {"active": ["pause", "cancel"], "paused": ["resume", "cancel"]}.get(state, [])


async def campaign_view(conn: Conn, settings: Settings, *, campaign_id: int, tenant_id: int | None
                        ) -> CampaignView:
    """The campaign (of ``tenant_id``; any for None), else NotFound."""
    campaign = await get_campaign(conn, tenant_id=tenant_id, campaign_id=campaign_id)
    runs = (await list_runs(conn, campaign_id=campaign_id))[-_RUNS_SHOWN:][::-1]
    waves = await queries.waves(conn, run_ids=[r["id"] for r in runs])
    live = {s.run["id"]: s for s in await snapshots(
        conn, quiet_hours_on=settings.sender_quiet_hours,
        run_ids=[r["id"] for r in runs if r["finished_at"] is None and r["state"] != "paused"])}
    now: datetime = await conn.fetchval("SELECT now()")
    forecasts = await queries.run_forecasts(conn, run_ids=[r["id"] for r in runs])
    plans = {run_id: _waves(forecast) for run_id, forecast in forecasts.items()}
    views = [await _run_view(conn, r, [w for w in waves if w["run_id"] == r["id"]], live.get(r["id"]),
                             plans.get(r["id"], []), detailed=i == 0) for i, r in enumerate(runs)]
    if not views:
        return CampaignView(campaign, [], charts.timeline([], now=now), charts.lines([]), now)
    latest = views[0]
    planned = plans.get(latest.run["id"], [])
    curve = [] if latest.run["finished_at"] is not None else await queries.settled_curve(
        conn, run_id=latest.run["id"])
    bars = _bars(latest, planned, now, campaign["time_zone"])
    return CampaignView(campaign, views, charts.timeline(bars, now=now),
                        charts.lines(_curves(latest, planned, curve, now)), now)


def _waves(forecast: Any) -> list[dict[str, Any]]:
    """The waves of a run's forecast (``scheduler.runs``: time_zone, messages, starts_at...)."""
    waves = forecast.get("waves") if isinstance(forecast, dict) else None
    return [w for w in waves if isinstance(w, dict)] if isinstance(waves, list) else []


async def _run_view(conn: Conn, run: Any, waves: list[Any], snap: RunSnapshot | None,
                    planned: list[dict[str, Any]], *, detailed: bool) -> RunView:
    released = sum(w["released"] for w in waves)
    stats = None
    if detailed and released + sum(w["held_out"] for w in waves) <= STATS_LIMIT:
        stats = await _stats(conn, run)
    counts: dict[str, int] = dict(stats.states) if stats else dict(run["counts"] or {})
    settled = snap.tally.settled if snap else sum(
        n for s, n in counts.items() if s not in ("queued", "sending", "deferred"))
    remaining = sum(z.remaining for z in snap.zones) if snap else 0
    plan = sum(int(w.get("messages") or 0) for w in planned)
    total = released if run["finished_at"] is not None else max(plan, released, settled + remaining)
    return RunView(run, waves, snap, stats, counts, settled, max(total, settled, 1))


async def _stats(conn: Conn, run: Any) -> RunMessageStats:
    """The run's counts by state, clicks and opt-outs (``sender.run_message_stats``: every
    message of the run, by its index), remembered for :data:`_STATS_TTL_S`."""
    now = time.monotonic()
    hit = _stats_memo.get(run["id"])
    if hit is not None and now - hit[0] < _STATS_TTL_S:
        return hit[1]
    stats = (await run_message_stats(conn, tenant_id=run["tenant_id"], run_ids=[run["id"]]))[run["id"]]
    for stale in [k for k, (at, _) in _stats_memo.items() if now - at >= _STATS_TTL_S]:
        del _stats_memo[stale]
    _stats_memo[run["id"]] = (now, stats)
    return stats


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _bars(view: RunView, planned: list[Any], now: datetime, zone: str) -> list[charts.Bar]:
    """Per zone (``zone``: the campaign's, for its fixed-time waves): what happened (projected
    while it sends) under the plan's stretch."""
    projected = {z.wave_id: z for z in view.snapshot.zones} if view.snapshot else {}
    bars = []
    for w in view.waves:
        plan: dict[str, Any] = next((p for p in planned if p.get("time_zone") == w["time_zone"]), {})
        starts, finishes = _at(plan.get("starts_at")), _at(plan.get("finishes_at"))
        z = projected.get(w["id"])
        end = w["finished_at"] if z is None or z.remaining == 0 else z.projected_finish_at
        note = f"{w['released']} released" + (f", {z.remaining} remaining" if z else "")
        bars.append(charts.Bar((w["time_zone"] or zone).rsplit("/", 1)[-1],
                               w["started_at"] or w["fire_at"], end, w["deadline_at"],
                               plan=(starts, finishes) if starts and finishes else None,
                               late=bool(z and z.at_risk), note=note))
    return bars


def _curves(view: RunView, planned: list[Any], curve: list[Any], now: datetime) -> list[charts.Line]:
    plan: list[tuple[float, float]] = []
    done = 0.0
    for p in sorted(planned, key=lambda p: str(p.get("starts_at"))):
        starts, finishes = _at(p.get("starts_at")), _at(p.get("finishes_at"))
        if starts is None or finishes is None:
            continue
        plan += [(starts.timestamp(), done), (finishes.timestamp(), done + float(p.get("messages") or 0))]
        done += float(p.get("messages") or 0)
    actual = [(r["at"].timestamp(), float(r["settled"])) for r in curve]
    lines = [charts.Line("planned", plan), charts.Line("actual", actual)]
    zones = view.snapshot.zones if view.snapshot else []
    left = [z for z in zones if z.remaining and z.projected_finish_at]
    if left and actual:
        ahead = [(now.timestamp(), float(view.settled))]
        for z in sorted(left, key=lambda z: z.projected_finish_at or now):
            ahead.append((z.projected_finish_at.timestamp() if z.projected_finish_at else 0.0,
                          ahead[-1][1] + z.remaining))
        lines.append(charts.Line("projected", ahead, dashed=True))
    return lines


async def act(pool: asyncpg.Pool, redis: aioredis.Redis, settings: Settings, principal: Principal, *,
              campaign_id: int, action: CampaignAction, reason: str) -> Any:
    """Pause, resume or cancel the campaign as the marketer and operator APIs do, audited
    with the console's principal and the reason; another tenant's campaign is NotFound."""
    keys = Keys(settings.redis_prefix)
    return await change_state(pool, RunControl(redis, keys), CapReservations(redis, keys),
                              campaign_id=campaign_id, action=action, tenant_id=principal.tenant_id,
                              audit=Audit(actor=principal.actor, reason=reason))

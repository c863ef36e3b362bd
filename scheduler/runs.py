"""Creating runs and reading audiences: shared by the scheduler loop, the API and the CLI."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from hexcast.core.control import RunControl, RunState
from hexcast.core.db import Conn, refresh_stats
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from scheduler import repo, reserving
from scheduler.forecast import forecast
from scheduler.service import Campaign, Fire, ZoneCount, max_segments, plan_waves, run_rate
from sender import LaneCapacity, RouteControl, lane_capacity, provider_specs
from targeting import audience_query, zone_counts_query

__all__ = ["audience_page", "campaign_capacity", "create_run", "zone_counts"]

log = get_logger("hexcast.scheduler")


async def campaign_capacity(c: Campaign, settings: Settings, routes: RouteControl) -> LaneCapacity:
    """Segments/s the campaign's lane has for its tenant through the configured routes that
    take traffic now (none an operator drained or disabled)."""
    return lane_capacity(
        provider_specs(settings), c.lane, c.tenant_id, default_rate=settings.provider_rate_per_s,
        transactional_share=settings.sender_transactional_share,
        bulk_share=settings.sender_bulk_share, segments_per_message=max_segments(c.body)[1],
        unavailable=await routes.unavailable())


async def zone_counts(conn: Conn, c: Campaign, *, as_of: datetime, resolution: int) -> list[ZoneCount]:
    sql, args = zone_counts_query(
        c.segment, tenant_id=c.tenant_id, campaign_id=c.id, fallback_zone=c.time_zone,
        as_of=as_of, resolution=resolution,
    )
    rows = await conn.fetch(sql, *args)
    return [ZoneCount(r["time_zone"], r["audience"], r["holdout"]) for r in rows]


async def audience_page(
    conn: Conn, c: Campaign, *, as_of: datetime, resolution: int, zone: str | None,
    after_id: int, limit: int,
) -> list[Any]:
    sql, args = audience_query(
        c.segment, tenant_id=c.tenant_id, campaign_id=c.id, fallback_zone=c.time_zone,
        as_of=as_of, resolution=resolution, zone=zone, after_id=after_id, limit=limit,
    )
    return list(await conn.fetch(sql, *args))


def _forecast_json(plans: list[Any], rate: float) -> dict[str, Any]:
    waves = [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dataclasses.asdict(w).items()}
        for w in forecast(plans, rate)
    ]
    return {"rate_per_s": rate, "waves": waves}


async def create_run(
    conn: Conn, control: RunControl, c: Campaign, fire: Fire, settings: Settings,
    *, routes: RouteControl, now_run: bool = False,
) -> int | None:
    """Create the run of ``fire`` with its waves and pacing; None if it existed already."""
    if await refresh_stats(conn, table="recipients"):  # a fresh bulk load: plan on real numbers
        log.info("recipients_analyzed", tenant_id=c.tenant_id, campaign_id=c.id)
    zones = await zone_counts(conn, c, as_of=fire.first_fire_at, resolution=settings.h3_resolution)
    plans = plan_waves(c, fire, zones, now_run=now_run)
    capacity = await campaign_capacity(c, settings, routes)
    if capacity.segments_per_s <= 0:
        log.warning("no_route_serves_lane", tenant_id=c.tenant_id, campaign_id=c.id, lane=c.lane.value)
    rate = run_rate(c, plans, capacity=capacity)
    run_id = await repo.insert_run(
        conn, campaign_id=c.id, tenant_id=c.tenant_id, scheduled_for=fire.scheduled_for,
        first_fire_at=fire.first_fire_at, rate=rate, forecast=_forecast_json(plans, rate), waves=plans,
    )
    if run_id is not None:
        await control.set_state(run_id, RunState.RUNNING)
        # the senders' buckets count segments: the run's pace is its rate in segments
        await control.set_rate(run_id, rate * max_segments(c.body)[1])
        await reserving.start(conn, c, run_id)  # filled by the scheduler loop (Reserver)
        log.info("run_created", tenant_id=c.tenant_id, campaign_id=c.id, run_id=run_id,
                 waves=len(plans), rate=rate, capacity_segments_per_s=capacity.segments_per_s,
                 at=datetime.now(UTC).isoformat())
    return run_id

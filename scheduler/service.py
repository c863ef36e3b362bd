"""Campaign logic without I/O: due runs, waves, chunk records, previews, pacing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.forecast import (
    QuietHours,
    WavePlan,
    bulk_capacity,
    forecast,
    pacing_rate,
    required_rate,
)
from scheduler.models import PreviewPublic, ZonePreview, run_clock
from scheduler.timing import localize, next_fire, wall_clock
from sender import Lane, SendBatch, SendRequest, bulk_key, render, segment_info
from targeting import SegmentDefinition

__all__ = [
    "Campaign",
    "Fire",
    "ZoneCount",
    "build_preview",
    "chunk_key",
    "chunk_record",
    "due_fire",
    "max_segments",
    "plan_waves",
    "run_rate",
    "upcoming_fire",
]

#: The earliest civil offset on Earth (UTC+14): a recipient-local run starts this far ahead.
EARLIEST_ZONE = ZoneInfo("Etc/GMT-14")
LATEST_ZONE = ZoneInfo("Etc/GMT+12")
UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    tenant_id: int
    body: str
    segment: SegmentDefinition
    cron: str | None
    run_at: datetime | None
    time_zone: str
    time_mode: str
    deadline: datetime | None
    max_rate: float | None
    lane: Lane
    created_at: datetime

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def local(self) -> bool:
        return self.time_mode == "recipient_local"

    @classmethod
    def from_row(cls, row: Any) -> Campaign:
        return cls(
            id=row["id"], tenant_id=row["tenant_id"], body=row["body"],
            segment=SegmentDefinition.model_validate(row["segment"]), cron=row["cron"],
            run_at=row["run_at"], time_zone=row["time_zone"], time_mode=row["time_mode"],
            deadline=row["deadline"], max_rate=row["max_rate"], lane=Lane(row["lane"]),
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class Fire:
    """One run to create: ``scheduled_for`` is its unique key (see the migration)."""

    scheduled_for: datetime  # naive: UTC instant (fixed) or wall time (recipient_local)
    first_fire_at: datetime  # aware


@dataclass(frozen=True, slots=True)
class ZoneCount:
    time_zone: str
    audience: int
    holdout: int


def _fixed_fire(c: Campaign, last: datetime | None, now: datetime, grace: timedelta) -> Fire | None:
    if c.run_at is not None:
        instant = localize(c.run_at, c.zone)
        return None if last is not None else Fire(instant.replace(tzinfo=None), instant)
    after = max(now - grace, c.created_at)
    if last is not None:
        after = max(after, last.replace(tzinfo=UTC))
    _, instant = next_fire(c.cron or "", c.zone, after)
    return Fire(instant.replace(tzinfo=None), instant)


def _local_fire(c: Campaign, last: datetime | None, now: datetime, grace: timedelta) -> Fire | None:
    if c.run_at is not None:
        wall = c.run_at if last is None else None
    else:
        # walls whose last wave (UTC-12) is more than ``grace`` old are skipped
        after = max(wall_clock(now - grace, LATEST_ZONE), wall_clock(c.created_at, EARLIEST_ZONE))
        if last is not None:
            after = max(after, last)
        wall, _ = next_fire(c.cron or "", UTC_ZONE, after.replace(tzinfo=UTC))
        wall = wall.replace(tzinfo=None)
    if wall is None:
        return None
    return Fire(wall, localize(wall, EARLIEST_ZONE))


def due_fire(c: Campaign, *, last: datetime | None, now: datetime, grace: timedelta) -> Fire | None:
    """The campaign's next run if its first wave is due at ``now``; None otherwise.

    ``last`` is the latest existing run's ``scheduled_for``. Fires more than ``grace`` in the
    past (the scheduler was down) are skipped, not caught up; nothing fires after the deadline.
    """
    fire = (_local_fire if c.local else _fixed_fire)(c, last, now, grace)
    if fire is None or fire.first_fire_at > now:
        return None
    wall = fire.scheduled_for if c.local else wall_clock(fire.first_fire_at, c.zone)
    if c.deadline is not None and wall >= c.deadline:
        return None
    return fire


def upcoming_fire(c: Campaign, *, now: datetime) -> Fire | None:
    """The next fire after ``now`` (a one-shot's fire even if past), for previews."""
    fire = (_local_fire if c.local else _fixed_fire)(c, None, now, timedelta(0))
    if fire is None or c.deadline is None:
        return fire
    wall = fire.scheduled_for if c.local else wall_clock(fire.first_fire_at, c.zone)
    return fire if wall < c.deadline else None


def plan_waves(c: Campaign, fire: Fire, zones: list[ZoneCount], *, now_run: bool = False) -> list[WavePlan]:
    """One wave per zone (recipient_local) or one for everyone (fixed); ``now_run`` fires all now."""
    sendable = {z.time_zone: z.audience - z.holdout for z in zones}
    if not c.local:
        deadline = localize(c.deadline, c.zone) if c.deadline else None
        return [WavePlan(None, fire.first_fire_at, sum(sendable.values()), deadline)]
    plans = []
    for zone, n in sorted(sendable.items()):
        tz = ZoneInfo(zone)
        at = fire.first_fire_at if now_run else localize(fire.scheduled_for, tz)
        plans.append(WavePlan(zone, at, n, localize(c.deadline, tz) if c.deadline else None))
    return plans


def run_rate(c: Campaign, plans: list[WavePlan], *, provider_rate: float, bulk_share: float) -> float:
    """Messages/s for the run: paced to its deadline within the bulk capacity."""
    return pacing_rate(plans, bulk_capacity(provider_rate, bulk_share, c.max_rate))


def max_segments(body: str) -> tuple[str, int]:
    """Encoding and segments of the body with every placeholder at a long value (upper bound)."""
    info = segment_info(render(body, _LONG_FIELDS))
    return info.encoding, info.segments


_LONG_FIELDS = {"first_name": "X" * 20, "last_name": "X" * 20, "user_id": "X" * 20,
                "time_zone": "America/Argentina/Buenos_Aires"}


def chunk_key(run_id: int, wave_id: int, after_id: int) -> str:
    """The record key of a chunk: the same chunk always gets the same key."""
    return f"run{run_id}:wave{wave_id}:after{after_id}"


def chunk_record(c: Campaign, *, run_id: int, rows: list[Any], now: datetime) -> SendBatch:
    """A bulk send record for recipients ``rows`` (id, user_id, phone, names, time_zone)."""
    items = [
        SendRequest(
            message_key=bulk_key(campaign_run_id=run_id, recipient_id=r["id"]),
            tenant_id=c.tenant_id, user_id=r["user_id"], phone=r["phone"],
            body=render(c.body, r)[:1600], campaign_run_id=run_id,
        )
        for r in rows
    ]
    return SendBatch(lane=c.lane, items=items, created_at=now)


def _verdict(meets: bool, need: float | None, capacity: float) -> str:
    if need is None:
        return "no deadline"
    if meets:
        return f"meets the deadline at {capacity:.1f}/s or more; needs {need:.2f}/s"
    if need == float("inf"):
        return "cannot meet deadline: it is before the start"
    return f"cannot meet deadline: needs {need:.2f} messages/s, capacity is {capacity:.2f}/s"


def build_preview(
    c: Campaign, fire: Fire, zones: list[ZoneCount], *, provider_rate: float, bulk_share: float,
    quiet: QuietHours | None = None,
) -> PreviewPublic:
    """Audience per zone, holdout, cost and the wave forecast for ``fire``."""
    plans = plan_waves(c, fire, zones)
    capacity = bulk_capacity(provider_rate, bulk_share, c.max_rate)
    rate = pacing_rate(plans, capacity, quiet=quiet, default_zone=c.time_zone)
    waves = forecast(plans, rate, quiet=quiet, default_zone=c.time_zone)
    need = required_rate(plans, quiet=quiet, default_zone=c.time_zone)
    meets = need is None or need <= capacity
    by_zone = {w.time_zone: w for w in waves}
    encoding, segs = max_segments(c.body)
    out = [
        ZonePreview(
            time_zone=z.time_zone, audience=z.audience, holdout=z.holdout,
            sendable=z.audience - z.holdout,
            starts_at=by_zone[z.time_zone].starts_at if z.time_zone in by_zone else None,
            finishes_at=by_zone[z.time_zone].finishes_at if z.time_zone in by_zone else None,
            deadline_at=by_zone[z.time_zone].deadline_at if z.time_zone in by_zone else None,
        )
        for z in zones
    ]
    sendable = sum(z.audience - z.holdout for z in zones)
    local_time, zone = run_clock(time_mode=c.time_mode, time_zone=c.time_zone, wall=fire.scheduled_for,
                                 first_fire_at=fire.first_fire_at)
    return PreviewPublic(
        campaign_id=c.id, scheduled_for=fire.first_fire_at, local_time=local_time, time_zone=zone,
        audience=sum(z.audience for z in zones), holdout=sum(z.holdout for z in zones),
        sendable=sendable, zones=out, encoding=encoding, segments_per_message=segs,
        cost_units=sendable * segs, capacity_per_s=capacity, rate_per_s=rate,
        required_rate_per_s=None if need in (None, float("inf")) else need,
        starts_at=min((w.starts_at for w in waves), default=None),
        finishes_at=max((w.finishes_at for w in waves), default=None),
        meets_deadline=meets, verdict=_verdict(meets, need, capacity),
    )

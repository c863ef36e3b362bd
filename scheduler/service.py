"""Campaign logic without I/O: due runs, waves, chunk records, pacing (previews: ``preview.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.deadline import wave_deadline
from scheduler.forecast import MIN_PACED_RATE, WavePlan, message_capacity, pacing_rate
from scheduler.timing import localize, next_fire, wall_clock
from sender import (
    PACE_WINDOW_S,
    PACED_CHUNK_WINDOWS,
    Lane,
    LaneCapacity,
    SendBatch,
    SendRequest,
    bulk_key,
    render,
    segment_info,
)
from targeting import SegmentDefinition

__all__ = [
    "Campaign",
    "Fire",
    "ZoneCount",
    "chunk_key",
    "chunk_record",
    "chunk_size",
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
    on_deadline: str = "expire"  # or "send_late" (scheduler.deadline)
    priority: str = "normal"  # or "reserved" (scheduler.reserving)

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
            created_at=row["created_at"], on_deadline=row["on_deadline"],
            priority=row["priority"],
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


def due_fire(c: Campaign, *, last: datetime | None, now: datetime, grace: timedelta,
             ahead: timedelta = timedelta(0)) -> Fire | None:
    """The campaign's next run if its first wave is due at ``now`` (or within ``ahead``: a
    reserved campaign's run is created before its send day, with its cap reservation); None
    otherwise.

    ``last`` is the latest existing run's ``scheduled_for``. Fires more than ``grace`` in the
    past (the scheduler was down) are skipped, not caught up; nothing fires after the deadline.
    """
    fire = (_local_fire if c.local else _fixed_fire)(c, last, now, grace)
    if fire is None or fire.first_fire_at > now + ahead:
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
        return [WavePlan(None, fire.first_fire_at, sum(sendable.values()), wave_deadline(c, None))]
    plans = []
    for zone, n in sorted(sendable.items()):
        at = fire.first_fire_at if now_run else localize(fire.scheduled_for, ZoneInfo(zone))
        plans.append(WavePlan(zone, at, n, wave_deadline(c, zone)))
    return plans


def run_rate(c: Campaign, plans: list[WavePlan], *, capacity: LaneCapacity) -> float:
    """Messages/s for the run: paced to its deadline within what the routes give its lane
    (segments/s over its messages' segments, at most ``max_rate``). With no route serving
    the lane, ``MIN_PACED_RATE``: the senders dead-letter what no route takes."""
    cap = message_capacity(capacity.segments_per_s, max_segments(c.body)[1], c.max_rate)
    return pacing_rate(plans, cap) if cap > 0 else MIN_PACED_RATE


def max_segments(body: str) -> tuple[str, int]:
    """Encoding and segments of the body with every placeholder at a long value (upper bound)."""
    info = segment_info(render(body, _LONG_FIELDS))
    return info.encoding, info.segments


_LONG_FIELDS = {"first_name": "X" * 20, "last_name": "X" * 20, "user_id": "X" * 20,
                "time_zone": "America/Argentina/Buenos_Aires"}


def chunk_key(run_id: int, wave_id: int, after_id: int) -> str:
    """The record key of a chunk: the same chunk always gets the same key."""
    return f"run{run_id}:wave{wave_id}:after{after_id}"


def chunk_size(rate_per_s: float, most: int) -> tuple[int, bool]:
    """Recipients a chunk, and whether it is paced: ``most`` for a run whose pacing window
    (rate × ``PACE_WINDOW_S``) is a full chunk or more; else whole windows, up to
    ``PACED_CHUNK_WINDOWS`` of them within ``most``, so the sender sends a window a call."""
    window = max(1, int(rate_per_s * PACE_WINDOW_S))
    if window >= most:
        return most, False
    return window * min(PACED_CHUNK_WINDOWS, most // window), True


def chunk_record(c: Campaign, *, run_id: int, rows: list[Any], now: datetime,
                 expires_at: datetime | None = None, paced: bool = False) -> SendBatch:
    """A bulk send record for recipients ``rows`` (id, user_id, phone, names, time_zone);
    ``expires_at``: the wave's deadline, when it is a cut-off (``scheduler.deadline``)."""
    items = [
        SendRequest(
            message_key=bulk_key(campaign_run_id=run_id, recipient_id=r["id"]),
            tenant_id=c.tenant_id, user_id=r["user_id"], phone=r["phone"],
            body=render(c.body, r)[:1600], campaign_run_id=run_id, expires_at=expires_at,
        )
        for r in rows
    ]
    return SendBatch(lane=c.lane, items=items, created_at=now, paced=paced)

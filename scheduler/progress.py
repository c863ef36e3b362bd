"""A run's progress: when it is finished, and where each zone is projected to finish.

Pure. The senders' statements tally, per run, how many messages are *settled* (reached a
provider or an outcome: accepted, unknown, delivered, failed, expired, suppressed) and how
many are *final* (delivered, failed, expired, suppressed); see migration 0024.

- **Finished**: every wave is released (or the run was cancelled), every released message is
  settled, and either every one is final or no message settled for ``receipt_wait_s`` (a
  receipt that has not come by then is taken as never coming: the message stays ``accepted``
  in the counts).
- **Projection**: what is left of each zone (not yet released, plus its part of the senders'
  backlog) is sent at the rate measured over the last minute, by the same model as the plan
  (:func:`scheduler.forecast.forecast`: one paced stream, zones one after another in release
  order, quiet hours in each zone's own time), which is how the scheduler releases a run's
  waves. Messages carry no zone: the backlog (released, not yet settled) is the last messages
  released, so it counts on the zone releasing now, and what it has released falls short of,
  on the zones released before it, latest first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.forecast import QuietHours, WavePlan, forecast, release_order

__all__ = [
    "FINAL_STATES",
    "GAP_S",
    "MEASURE_WINDOW_S",
    "SETTLED_STATES",
    "WARMUP_S",
    "Tally",
    "ZoneProjection",
    "ZoneState",
    "end_state",
    "is_finished",
    "measured_rate",
    "measuring_window",
    "project",
]

FINAL_STATES = ("delivered", "failed", "expired", "suppressed")
SETTLED_STATES = ("accepted", "unknown", *FINAL_STATES)
MEASURE_WINDOW_S = 60.0
"""The rate of a run is measured over this much of its latest sending."""
WARMUP_S = 10.0
"""Until a run has sent this long, its planned rate stands in for the measured one."""
GAP_S = 5.0
"""A zone whose release started within this of the previous one's end continues the same
stretch of sending (the scheduler claims the next wave within a poll)."""


@dataclass(frozen=True, slots=True)
class Tally:
    """A run's settled and final messages, those settled in the last ``MEASURE_WINDOW_S``, and
    how long ago the last one settled (None: none yet)."""

    settled: int = 0
    final: int = 0
    recent: int = 0
    idle_s: float | None = None


@dataclass(frozen=True, slots=True)
class ZoneState:
    """One wave as the projection needs it; ``planned`` is its sendable audience at planning."""

    wave_id: int
    time_zone: str | None
    fire_at: datetime
    deadline_at: datetime | None
    planned: int
    released: int
    state: str  # the wave's: pending, releasing, then done or cancelled
    started_at: datetime | None = None
    finished_at: datetime | None = None  # when its release ended

    @property
    def releasing(self) -> bool:
        return self.state in ("pending", "releasing") and self.started_at is not None

    @property
    def released_all(self) -> bool:
        """The scheduler has nothing more to release of it."""
        return self.state not in ("pending", "releasing")


@dataclass(frozen=True, slots=True)
class ZoneProjection:
    wave_id: int
    time_zone: str | None
    remaining: int
    rate_per_s: float
    projected_finish_at: datetime | None  # None: nothing left, or a rate of 0 (never)
    deadline_at: datetime | None

    @property
    def at_risk(self) -> bool:
        """Work is left and it is projected to end after the deadline (or never)."""
        if self.remaining <= 0 or self.deadline_at is None:
            return False
        return self.projected_finish_at is None or self.projected_finish_at > self.deadline_at

    @property
    def late_s(self) -> float:
        """Seconds past the deadline the zone is projected to finish (inf: never; 0: in time)."""
        if not self.at_risk or self.deadline_at is None:
            return 0.0
        if self.projected_finish_at is None:
            return math.inf
        return (self.projected_finish_at - self.deadline_at).total_seconds()


def is_finished(*, released: int, all_released: bool, tally: Tally, receipt_wait_s: float) -> bool:
    """Whether a run is over: see the module's docstring."""
    if not all_released or tally.settled < released:
        return False
    if tally.final >= released:
        return True
    return tally.idle_s is None or tally.idle_s >= receipt_wait_s


def end_state(run_state: str, counts: Mapping[str, int], cut_at_deadline: int) -> str:
    """The state a run ends in: a cancelled run stays so; a run any of whose messages expired
    (or recipients were cut at the deadline) is ``finished_with_expired``."""
    if run_state == "cancelled":
        return "cancelled"
    if counts.get("expired", 0) > 0 or cut_at_deadline > 0:
        return "finished_with_expired"
    return "finished"


def _sending_since(started: Sequence[ZoneState]) -> datetime:
    """When the run's current stretch of sending began: the start of the latest started zone,
    taken back over each zone before it that was still releasing, or ended at most
    ``GAP_S`` before the next one started (a run's waves go one after another, so the
    stretch spans several; a zone that fired after a pause starts a new one)."""
    order = sorted(started, key=lambda z: z.started_at or z.fire_at)
    since = order[-1].started_at or order[-1].fire_at
    for prev in reversed(order[:-1]):
        if prev.finished_at is not None and prev.finished_at < since - timedelta(seconds=GAP_S):
            break
        since = prev.started_at or prev.fire_at
    return since


def measuring_window(zones: Sequence[ZoneState], *, now: datetime, quiet: QuietHours | None = None,
                     default_zone: str = "UTC") -> float | None:
    """The seconds of the run's current sending its rate is measured over: the last minute,
    or since its current stretch of sending began (:func:`_sending_since`). None before any
    zone started, while the zone at the head of the line is in quiet hours, and until the
    stretch has lasted ``WARMUP_S``: the planned rate stands in."""
    started = [z for z in zones if z.started_at is not None]
    if not started:
        return None
    if quiet is not None:
        head = max(started, key=lambda z: z.fire_at)
        zone = ZoneInfo(head.time_zone or default_zone)
        if quiet.open_at(now, zone) != now:
            return None
    span = (now - _sending_since(started)).total_seconds()
    return None if span < WARMUP_S else min(MEASURE_WINDOW_S, span)


def measured_rate(recent: int, *, window_s: float | None, planned_rate: float, idle: bool) -> float:
    """Messages settled per second over ``window_s``; the planned rate without a window or
    while the run is idle by plan (no zone releasing and nothing left with the senders)."""
    return planned_rate if window_s is None or idle else recent / window_s


def _remaining(zones: Sequence[ZoneState], backlog: int) -> list[int]:
    """Per zone (in the given order): not yet released, plus its part of the backlog (see the
    module's docstring; all of it on the first zone if none has released anything)."""
    left = [0 if z.released_all else max(z.planned - z.released, 0) for z in zones]
    if backlog <= 0 or not zones:
        return left
    started = [i for i, z in enumerate(zones) if z.started_at is not None and z.released > 0]
    for i in sorted(started, key=lambda i: zones[i].started_at or zones[i].fire_at, reverse=True):
        part = min(backlog, zones[i].released)
        left[i], backlog = left[i] + part, backlog - part
    if backlog > 0:  # more than was released (a chunk republished): on the latest, or the first
        left[started[-1] if started else 0] += backlog
    return left


def project(
    zones: Sequence[ZoneState], *, backlog: int, rate: float, now: datetime,
    quiet: QuietHours | None = None, default_zone: str = "UTC",
) -> list[ZoneProjection]:
    """Each zone's remaining work and projected finish at ``rate`` (see the module's
    docstring), in release order."""
    ordered = sorted(zones, key=lambda z: (
        *release_order(WavePlan(z.time_zone, z.fire_at, z.planned, z.deadline_at)), z.wave_id))
    left = _remaining(ordered, backlog)
    plans = [WavePlan(z.time_zone, max(z.fire_at, now), n, z.deadline_at)
             for z, n in zip(ordered, left, strict=True) if n > 0]
    finishes = iter(_finishes(plans, rate, quiet, default_zone))
    return [ZoneProjection(z.wave_id, z.time_zone, n, rate, next(finishes) if n > 0 else None,
                           z.deadline_at)
            for z, n in zip(ordered, left, strict=True)]


def _finishes(plans: list[WavePlan], rate: float, quiet: QuietHours | None,
              default_zone: str) -> list[datetime | None]:
    """Each plan's forecast finish; None throughout at a rate of 0 or past the calendar."""
    if rate <= 0:
        return [None] * len(plans)
    try:
        found = forecast(plans, rate, quiet=quiet, default_zone=default_zone)
    except OverflowError:
        return [None] * len(plans)
    out: list[datetime | None] = [None] * len(plans)  # the forecast's order is release order
    for k, f in zip(sorted(range(len(plans)), key=lambda k: release_order(plans[k])), found,
                    strict=True):
        out[k] = f.finishes_at
    return out

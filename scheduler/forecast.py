"""Forecast and pacing: when each wave starts and ends at a rate, and the rate a deadline needs.

Pure. Waves are served first come, first served by one paced stream of ``rate`` messages per
second (the campaign's share of the provider): a wave starts at its fire instant or when the
previous wave is done, whichever is later; waves fired together go earliest deadline first
(:func:`release_order`); the scheduler releases a run's waves so (``scheduler.repo.claim_wave``).
The rate a set of deadlines needs is the largest, over every span of consecutive waves, of
their messages over the time between the first one's fire and the last one's deadline. With
quiet hours (a wave sends only outside them, in its zone) the rate is found by bisection over
the forecast instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "MIN_PACED_RATE",
    "RATE_FLOOR",
    "QuietHours",
    "WaveForecast",
    "WavePlan",
    "forecast",
    "meets",
    "message_capacity",
    "release_order",
    "pacing_rate",
    "required_rate",
]

MIN_PACED_RATE = 10.0
"""Deadline pacing never goes slower than this (messages/s), so small runs finish promptly."""
RATE_FLOOR = 0.01
"""The least rate the forecast asks for (messages/s, the slowest a campaign may be capped at):
a plan that meets at it is said to need it."""
_MAX_RATE = 1e9
"""A plan that misses at this rate (messages/s) needs an infinite one."""


@dataclass(frozen=True, slots=True)
class WavePlan:
    time_zone: str | None
    fire_at: datetime
    messages: int
    deadline_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WaveForecast:
    time_zone: str | None
    messages: int
    starts_at: datetime
    finishes_at: datetime
    deadline_at: datetime | None

    @property
    def meets_deadline(self) -> bool:
        return self.deadline_at is None or self.finishes_at <= self.deadline_at


def release_order(wave: WavePlan) -> tuple[datetime, datetime]:
    """The order a run's waves are served in: by fire instant, then the earlier deadline (one
    without a deadline last); ties keep the plan's order."""
    return wave.fire_at, wave.deadline_at or datetime.max.replace(tzinfo=wave.fire_at.tzinfo)


def message_capacity(segments_per_s: float, segments_per_message: int, max_rate: float | None) -> float:
    """Messages/s a campaign may use: its lane's segments/s through the routes
    (``sender.lane_capacity``) over its messages' segments, capped by the campaign."""
    capacity = segments_per_s / max(segments_per_message, 1)
    return min(capacity, max_rate) if max_rate is not None else capacity


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily local window without sending (``start`` > ``end`` wraps midnight, e.g. 21-08)."""

    start: time
    end: time

    def _quiet(self, t: time) -> bool:
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def _next(self, instant: datetime, zone: ZoneInfo, at: time) -> datetime:
        local = instant.astimezone(zone)
        for days in range(3):
            wall = datetime.combine(local.date() + timedelta(days=days), at)
            candidate = wall.replace(tzinfo=zone, fold=0).astimezone(instant.tzinfo)
            if candidate > instant:
                return candidate
        raise ValueError("no next occurrence")  # pragma: no cover - a day always has one

    def open_at(self, instant: datetime, zone: ZoneInfo) -> datetime:
        """``instant``, or the end of the quiet window it falls in."""
        if self.start == self.end or not self._quiet(instant.astimezone(zone).time()):
            return instant
        return self._next(instant, zone, self.end)

    def closes_at(self, instant: datetime, zone: ZoneInfo) -> datetime:
        """The next start of quiet hours after ``instant``."""
        return self._next(instant, zone, self.start)


def _sending(seconds: float) -> timedelta:
    """``seconds`` of sending, rounded up to whole microseconds: sending something always
    takes time, so a plan never meets a deadline by rounding."""
    return timedelta(microseconds=math.ceil(seconds * 1e6))


def _send_until(start: datetime, seconds: float, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """When ``seconds`` of sending that begins at ``start`` ends, pausing through quiet hours."""
    if quiet.start == quiet.end:
        return start + _sending(seconds)
    t, left = quiet.open_at(start, zone), seconds
    for _ in range(10_000):
        window = (quiet.closes_at(t, zone) - t).total_seconds()
        if left <= window:
            return t + _sending(left)
        left -= window
        t = quiet.open_at(t + timedelta(seconds=window), zone)
    return datetime.max.replace(tzinfo=start.tzinfo)


def forecast(
    waves: list[WavePlan], rate: float, *, quiet: QuietHours | None = None, default_zone: str = "UTC"
) -> list[WaveForecast]:
    """Start and finish of each wave (in :func:`release_order`) at ``rate`` messages per second; with
    ``quiet``, a wave (in its zone, or ``default_zone``) sends only outside quiet hours."""
    out: list[WaveForecast] = []
    free_at: datetime | None = None
    for wave in sorted(waves, key=release_order):
        start = wave.fire_at if free_at is None else max(wave.fire_at, free_at)
        if quiet is not None and wave.messages:
            zone = ZoneInfo(wave.time_zone or default_zone)
            start = quiet.open_at(start, zone)
            finish = _send_until(start, wave.messages / rate, zone, quiet)
        else:
            finish = start + _sending(wave.messages / rate)
        free_at = finish
        out.append(WaveForecast(wave.time_zone, wave.messages, start, finish, wave.deadline_at))
    return out


def meets(
    waves: list[WavePlan], rate: float, *, quiet: QuietHours | None = None, default_zone: str = "UTC"
) -> bool:
    """Whether every wave finishes by its deadline at ``rate``."""
    return all(w.meets_deadline for w in forecast(waves, rate, quiet=quiet, default_zone=default_zone))


def _bisect_rate(waves: list[WavePlan], quiet: QuietHours | None, default_zone: str,
                 low: float) -> float:
    """The least rate (at least ``low``, which must not be above it) that meets, to 1e-12
    relative: a bracket [hi / 4, hi] found by factors of 4, then halved (meeting is monotone
    in the rate)."""
    def ok(rate: float) -> bool:
        return meets(waves, rate, quiet=quiet, default_zone=default_zone)

    if ok(low):
        return low
    hi = low * 4
    while not ok(hi):
        if hi >= _MAX_RATE:
            return float("inf")
        hi = min(hi * 4, _MAX_RATE)
    lo = max(hi / 4, low)
    while hi - lo > hi * 1e-12:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def _spans_rate(waves: list[WavePlan]) -> float | None:
    """The largest, over every span of consecutive waves, of their messages over the time
    between the first one's fire and the last one's deadline (None: no such span)."""
    ordered = sorted(waves, key=release_order)
    need: float | None = None
    for i, first in enumerate(ordered):
        total = 0
        for last in ordered[i:]:
            total += last.messages
            if last.deadline_at is None or total == 0:
                continue
            span = (last.deadline_at - first.fire_at).total_seconds()
            rate = float("inf") if span <= 0 else total / span
            need = rate if need is None else max(need, rate)
    return need


def required_rate(
    waves: list[WavePlan], *, quiet: QuietHours | None = None, default_zone: str = "UTC"
) -> float | None:
    """The least rate meeting every wave's deadline, never below ``RATE_FLOOR``; None without
    deadlines; inf if impossible. The forecast meets at it: the span bound is checked against
    the forecast (whose times are whole microseconds) and raised by a hair if need be."""
    need = _spans_rate(waves)
    if need is None or need == float("inf"):
        return need
    need = max(need, RATE_FLOOR)  # quiet hours only ever need more
    if quiet is not None:
        return _bisect_rate(waves, quiet, default_zone, need)
    step = 1e-12
    while not meets(waves, need):
        if step > 1e-6:  # a wave with nothing to send, waiting past its deadline
            return _bisect_rate(waves, None, default_zone, need)
        need, step = need * (1 + step), step * 2
    return need


def pacing_rate(
    waves: list[WavePlan], capacity: float, *, margin: float = 1.2, quiet: QuietHours | None = None,
    default_zone: str = "UTC",
) -> float:
    """The run's rate: just fast enough for its deadlines (with ``margin``), never above
    ``capacity``; the full capacity when there is no deadline or it cannot be met."""
    need = required_rate(waves, quiet=quiet, default_zone=default_zone)
    if need is None or need == float("inf"):
        return capacity
    return min(capacity, max(need * margin, MIN_PACED_RATE))

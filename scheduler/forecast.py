"""Forecast and pacing: when each wave starts and ends at a rate, and the rate a deadline needs.

Pure. Waves are served first come, first served by one paced stream of ``rate`` messages per
second (the campaign's share of the provider): a wave starts at its fire instant or when the
previous wave is done, whichever is later. The rate a set of deadlines needs is the largest,
over every span of consecutive waves, of their messages over the time between the first
one's fire and the last one's deadline. With quiet hours (a wave sends only outside them, in
its zone) the rate is found by bisection over the forecast instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "MIN_PACED_RATE",
    "QuietHours",
    "WaveForecast",
    "WavePlan",
    "bulk_capacity",
    "forecast",
    "pacing_rate",
    "required_rate",
]

MIN_PACED_RATE = 10.0
"""Deadline pacing never goes slower than this (messages/s), so small runs finish promptly."""


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


def bulk_capacity(provider_rate_per_s: float, bulk_share: float, max_rate: float | None) -> float:
    """Messages/s a campaign may use: the bulk share of the provider, capped by the campaign."""
    capacity = provider_rate_per_s * bulk_share
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


def _send_until(start: datetime, seconds: float, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """When ``seconds`` of sending that begins at ``start`` ends, pausing through quiet hours."""
    if quiet.start == quiet.end:
        return start + timedelta(seconds=seconds)
    t, left = quiet.open_at(start, zone), seconds
    for _ in range(10_000):
        window = (quiet.closes_at(t, zone) - t).total_seconds()
        if left <= window:
            return t + timedelta(seconds=left)
        left -= window
        t = quiet.open_at(t + timedelta(seconds=window), zone)
    return datetime.max.replace(tzinfo=start.tzinfo)


def forecast(
    waves: list[WavePlan], rate: float, *, quiet: QuietHours | None = None, default_zone: str = "UTC"
) -> list[WaveForecast]:
    """Start and finish of each wave (in fire order) at ``rate`` messages per second; with
    ``quiet``, a wave (in its zone, or ``default_zone``) sends only outside quiet hours."""
    out: list[WaveForecast] = []
    free_at: datetime | None = None
    for wave in sorted(waves, key=lambda w: w.fire_at):
        start = wave.fire_at if free_at is None else max(wave.fire_at, free_at)
        if quiet is not None and wave.messages:
            zone = ZoneInfo(wave.time_zone or default_zone)
            start = quiet.open_at(start, zone)
            finish = _send_until(start, wave.messages / rate, zone, quiet)
        else:
            finish = start + timedelta(seconds=wave.messages / rate)
        free_at = finish
        out.append(WaveForecast(wave.time_zone, wave.messages, start, finish, wave.deadline_at))
    return out


def _bisect_rate(waves: list[WavePlan], quiet: QuietHours, default_zone: str) -> float:
    def meets(rate: float) -> bool:
        return all(w.meets_deadline for w in forecast(waves, rate, quiet=quiet, default_zone=default_zone))

    hi = 1.0
    while not meets(hi):
        hi *= 4
        if hi > 1e9:
            return float("inf")
    lo = 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if meets(mid) else (mid, hi)
    return hi


def required_rate(
    waves: list[WavePlan], *, quiet: QuietHours | None = None, default_zone: str = "UTC"
) -> float | None:
    """The least rate meeting every wave's deadline; None without deadlines; inf if impossible."""
    if quiet is not None and any(w.deadline_at and w.messages for w in waves):
        return _bisect_rate(waves, quiet, default_zone)
    ordered = sorted(waves, key=lambda w: w.fire_at)
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

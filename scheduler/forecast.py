"""Forecast and pacing: when each wave starts and ends at a rate, and the rate a deadline needs.

Pure. Waves are served first come, first served by one paced stream of ``rate`` messages per
second (the campaign's share of the provider): a wave starts at its fire instant or when the
previous wave is done, whichever is later. The rate a set of deadlines needs is the largest,
over every span of consecutive waves, of their messages over the time between the first
one's fire and the last one's deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "MIN_PACED_RATE", "WaveForecast", "WavePlan", "bulk_capacity", "forecast", "pacing_rate", "required_rate",
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


def forecast(waves: list[WavePlan], rate: float) -> list[WaveForecast]:
    """Start and finish of each wave (in fire order) at ``rate`` messages per second."""
    out: list[WaveForecast] = []
    free_at: datetime | None = None
    for wave in sorted(waves, key=lambda w: w.fire_at):
        start = wave.fire_at if free_at is None else max(wave.fire_at, free_at)
        finish = start + timedelta(seconds=wave.messages / rate)
        free_at = finish
        out.append(WaveForecast(wave.time_zone, wave.messages, start, finish, wave.deadline_at))
    return out


def required_rate(waves: list[WavePlan]) -> float | None:
    """The least rate meeting every wave's deadline; None without deadlines; inf if impossible."""
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


def pacing_rate(waves: list[WavePlan], capacity: float, *, margin: float = 1.2) -> float:
    """The run's rate: just fast enough for its deadlines (with ``margin``), never above
    ``capacity``; the full capacity when there is no deadline or it cannot be met."""
    need = required_rate(waves)
    if need is None or need == float("inf"):
        return capacity
    return min(capacity, max(need * margin, MIN_PACED_RATE))

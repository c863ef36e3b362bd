"""Whether a figure sampled over a soak levels off (a warm-up: caches filling, pools growing to
size) or keeps growing (a leak). Pure: a series of ``(seconds, value)`` in, a verdict out.

The series is cut into thirds by sample count. Least-squares slopes are fitted over the first
third, the last third and the whole. It is a leak when all three of these hold:

- the value grew: the mean of the last third is above the mean of the first by more than
  ``min_growth`` of the series' peak;
- the last third still climbs: its slope, times the series' duration, is more than
  ``min_tail`` of the peak, and more than ``floor_per_hour`` (0 by default);
- it did not slow down: the last third's slope is more than ``fraction`` of the first third's.

Every threshold but ``floor_per_hour`` is relative to the series itself, so the verdict does not
depend on the unit (bytes or MiB). Noise within about ±2 % of the level never makes a flat
series a leak (the means of its thirds differ by at most 4 %, below ``min_growth``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Growth", "LeakRule", "Point", "growth", "slope"]

Point = tuple[float, float]
"""(seconds, value); the seconds from any origin."""

_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Growth:
    """The verdict on one series. ``per_hour``: the least-squares slope over the whole series,
    in the series' units per hour; ``reason``: why it was judged so, for the report."""

    per_hour: float
    leveled_off: bool
    reason: str


class LeakRule(BaseModel):
    """The thresholds of :func:`growth` (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fraction: float = Field(default=0.25, ge=0, le=1)
    min_growth: float = Field(default=0.05, ge=0)
    min_tail: float = Field(default=0.02, ge=0)
    floor_per_hour: float = Field(default=0.0, ge=0)
    min_points: int = Field(default=9, ge=3)


def slope(points: Sequence[Point]) -> float:
    """Least-squares slope of ``points`` in value units per second; 0 when it is undefined
    (fewer than two points, or all at one time)."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def _mean(points: Sequence[Point]) -> float:
    return sum(v for _, v in points) / len(points)


def growth(series: Sequence[Point], rule: LeakRule | None = None) -> Growth:
    """Does ``series`` level off? See the module docstring for the rule."""
    rule = rule or LeakRule()
    points = sorted(series)
    per_hour = slope(points) * _HOUR
    if len(points) < rule.min_points:
        return Growth(per_hour, True, f"{len(points)} samples: too few to judge"
                                      f" (needs {rule.min_points})")
    peak = max(abs(v) for _, v in points)
    if peak == 0:
        return Growth(per_hour, True, "zero throughout")
    third = len(points) // 3
    first, last = points[:third], points[-third:]
    rose = (_mean(last) - _mean(first)) / peak
    if rose <= rule.min_growth:
        return Growth(per_hour, True, f"the last third is {rose:+.1%} of the peak above the first")
    early, late = slope(first) * _HOUR, slope(last) * _HOUR
    hours = (points[-1][0] - points[0][0]) / _HOUR
    slopes = f"the last third {late:+.4g}/h against {early:+.4g}/h in the first"
    if late * hours / peak <= rule.min_tail or late <= max(rule.floor_per_hour, rule.fraction * early):
        return Growth(per_hour, True, f"rose {rose:.1%} of the peak, then slowed: {slopes}")
    return Growth(per_hour, False, f"still growing: rose {rose:.1%} of the peak; {slopes}")

"""Pure campaign planning and results arithmetic for notebooks. No I/O.

Rates per group of recipients, the holdout lift with a normal-approximation confidence
interval, conversions (a store visit after the send), the planned send rate over time from a
wave forecast, and the Black-Friday date.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import NormalDist
from typing import Protocol

from hexcast.core.errors import InvalidInput
from targeting import CellIndex

__all__ = [
    "GroupRates",
    "Lift",
    "Outcome",
    "black_friday",
    "converted_users",
    "group_rates",
    "holdout_lift",
    "interest_segments",
    "send_rate_series",
]


class Outcome(Protocol):
    @property
    def user_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def clicked(self) -> bool: ...
    @property
    def opted_out(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class GroupRates:
    group: str
    messages: int
    delivered: int
    clicks: int
    opt_outs: int

    @property
    def delivery_rate(self) -> float:
        return self.delivered / self.messages if self.messages else 0.0

    @property
    def click_rate(self) -> float:
        """Clicks per delivered message."""
        return self.clicks / self.delivered if self.delivered else 0.0

    @property
    def opt_out_rate(self) -> float:
        """Opt-outs per delivered message."""
        return self.opt_outs / self.delivered if self.delivered else 0.0


def group_rates(outcomes: Iterable[Outcome], groups: Mapping[str, Iterable[str]]) -> list[GroupRates]:
    """Delivery, click and opt-out counts per group; ``groups`` maps a user to its groups (a
    user may be in several, e.g. overlapping segments; users without a group are left out)."""
    acc: dict[str, list[int]] = {}
    for o in outcomes:
        for g in groups.get(o.user_id, ()):
            row = acc.setdefault(g, [0, 0, 0, 0])
            row[0] += 1
            row[1] += o.state == "delivered"
            row[2] += o.clicked
            row[3] += o.opted_out
    return [GroupRates(g, *acc[g]) for g in sorted(acc)]


def interest_segments(
    interests: Mapping[str, Sequence[str]], segments: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Each user's segments among ``segments`` (name → its ``interests_any``): a user belongs
    when holding one of the interests or a sub-interest of one, as in the segment SQL."""
    out: dict[str, list[str]] = {}
    for user, have in interests.items():
        out[user] = [name for name, wanted in segments.items()
                     if any(h == w or h.startswith(w + "/") for h in have for w in wanted)]
    return out


@dataclass(frozen=True, slots=True)
class Lift:
    """Conversion of the messaged group vs the control group, with a CI for the difference."""

    treated: int
    treated_conversions: int
    control: int
    control_conversions: int
    confidence: float
    low: float
    high: float

    @property
    def treated_rate(self) -> float:
        return self.treated_conversions / self.treated

    @property
    def control_rate(self) -> float:
        return self.control_conversions / self.control

    @property
    def absolute(self) -> float:
        return self.treated_rate - self.control_rate

    @property
    def relative(self) -> float:
        return self.absolute / self.control_rate if self.control_rate else math.inf


def holdout_lift(
    *, treated: int, treated_conversions: int, control: int, control_conversions: int,
    confidence: float = 0.95,
) -> Lift:
    """The difference of conversion rates (treated − control) with a Wald interval."""
    if treated <= 0 or control <= 0:
        raise InvalidInput("both groups need at least one recipient", field="control")
    if not 0 <= treated_conversions <= treated or not 0 <= control_conversions <= control:
        raise InvalidInput("conversions must be between 0 and the group size", field="conversions")
    if not 0 < confidence < 1:
        raise InvalidInput("confidence must be between 0 and 1", field="confidence")
    pt, pc = treated_conversions / treated, control_conversions / control
    se = math.sqrt(pt * (1 - pt) / treated + pc * (1 - pc) / control)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    diff = pt - pc
    return Lift(treated, treated_conversions, control, control_conversions, confidence,
                diff - z * se, diff + z * se)


def converted_users(
    index: CellIndex, visits: Iterable[tuple[str, float, float, datetime]], *,
    since: datetime, window: timedelta,
) -> set[str]:
    """Users with a visit inside a store fence in [since, since + window)."""
    until = since + window
    return {user for user, lat, lng, ts in visits
            if since <= ts < until and index.containing(lat, lng)}


class _Wave(Protocol):
    @property
    def time_zone(self) -> str | None: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def finishes_at(self) -> datetime: ...


def send_rate_series(
    waves: Sequence[_Wave], rate: float, *, start: datetime, end: datetime, step: timedelta,
) -> list[tuple[datetime, dict[str, float]]]:
    """The planned messages/s per wave zone at each ``step`` from ``start`` to ``end``: the
    run's paced ``rate`` while a wave sends (waves are served one at a time), averaged over
    each step."""
    if step <= timedelta(0) or end <= start:
        raise InvalidInput("need a positive step and end after start", field="step")
    out = []
    t = start
    while t < end:
        nxt = t + step
        shares = {}
        for w in waves:
            overlap = (min(nxt, w.finishes_at) - max(t, w.starts_at)).total_seconds()
            shares[w.time_zone or "all"] = rate * max(0.0, overlap) / step.total_seconds()
        out.append((t, shares))
        t = nxt
    return out


def black_friday(year: int) -> date:
    """The day after the fourth Thursday of November."""
    first = date(year, 11, 1)
    thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    return thursday + timedelta(days=22)

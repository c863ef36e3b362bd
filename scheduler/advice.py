"""What would make a plan that misses its deadlines meet them, computed on the forecast. Pure.

Each change alone, at the rate the plan has (its capacity, since a plan that misses runs at
capacity), is the least that meets every deadline; the forecast decides:

- **start earlier**: the fewest whole seconds to move every wave's fire earlier, deadlines
  unchanged (a wave that starts earlier never finishes later, so a search over the shift);
- **capacity**: the rate the deadlines need (:func:`~scheduler.forecast.required_rate`) in
  segments/s, less what the routes give; and the campaign's own ``max_rate`` when that is
  what holds it back;
- **audience**: the most recipients that fit. Waves in release order, each keeps the most of
  its recipients for which the waves kept so far (the later ones still empty) meet every
  deadline; one more in any wave cut would miss. Without quiet hours this is the largest
  audience that fits (the kept counts are the greatest feasible prefix sums).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from scheduler.forecast import QuietHours, WavePlan, meets, release_order, required_rate

__all__ = ["MAX_SHIFT_S", "Suggestions", "most_that_fit", "start_earlier_s", "suggest"]

MAX_SHIFT_S = 366 * 86_400
"""The furthest an earlier start is looked for."""
_CLOSE = 1e-6
"""A rate suggested is the least that meets, shown with the fewest decimals within this
(relative) of it that the forecast confirms."""


@dataclass(frozen=True, slots=True)
class Suggestions:
    start_earlier_s: int | None
    required_segments_per_s: float | None
    add_segments_per_s: float | None
    max_rate_at_least: float | None
    fits: list[int] | None  # per wave, in the order of the waves given
    lower_audience_by: int | None


def _meets(waves: list[WavePlan], rate: float, quiet: QuietHours | None, zone: str) -> bool:
    return rate > 0 and meets(waves, rate, quiet=quiet, default_zone=zone)


def start_earlier_s(
    waves: list[WavePlan], rate: float, *, quiet: QuietHours | None = None, default_zone: str = "UTC"
) -> int | None:
    """The fewest whole seconds every wave must fire earlier to meet at ``rate`` (0: it meets
    already); None if no start up to :data:`MAX_SHIFT_S` earlier does."""
    def ok(shift: int) -> bool:
        moved = [replace(w, fire_at=w.fire_at - timedelta(seconds=shift)) for w in waves]
        return _meets(moved, rate, quiet, default_zone)

    if ok(0):
        return 0
    hi = 1
    while not ok(hi):
        if hi >= MAX_SHIFT_S:
            return None
        hi = min(hi * 2, MAX_SHIFT_S)
    lo = hi // 2  # misses (0 does, and so did every smaller power of two)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def most_that_fit(
    waves: list[WavePlan], rate: float, *, quiet: QuietHours | None = None, default_zone: str = "UTC"
) -> list[int] | None:
    """Per wave (in the order given), the most of its messages that fit at ``rate``: waves
    taken in release order, each keeps the most for which the waves kept so far and the later
    ones emptied meet every deadline (an empty wave still waits for the ones before it).
    None when even the empty plan misses."""
    order = sorted(range(len(waves)), key=lambda k: release_order(waves[k]))
    kept = [0] * len(waves)
    for i in order:
        def ok(n: int, i: int = i) -> bool:
            trial = [replace(w, messages=n if k == i else kept[k]) for k, w in enumerate(waves)]
            return _meets(trial, rate, quiet, default_zone)

        if ok(waves[i].messages):
            kept[i] = waves[i].messages
            continue
        if not ok(0):
            return None
        lo, hi = 0, waves[i].messages  # lo fits, hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        kept[i] = lo
    return kept


def _least(value: float, ok: Callable[[float], bool]) -> float:
    """``value`` (the least that meets, up to float error) with the fewest decimals (2 to 12)
    that still meets and is within ``_CLOSE`` of it; else ``value`` raised by float steps."""
    for digits in range(2, 13):
        scale = 10.0**digits
        rounded = math.ceil(value * scale) / scale
        if rounded <= value * (1 + _CLOSE) and ok(rounded):
            return rounded
    for _ in range(64):
        if ok(value):
            break
        value *= 1 + 2**-50
    return value


def _rates(need: float, segs: int, routes: float, max_rate: float | None,
           ok: Callable[[float], bool]) -> tuple[float, float | None, float | None]:
    """Required segments/s; segments/s to add to the routes (None: they suffice); the least
    max_rate (None: not what holds it back)."""
    required = _least(need * segs, lambda r: ok(r / segs))
    add = None
    if need * segs > routes:
        add = _least(need * segs - routes, lambda a: ok((routes + a) / segs))
    raise_to = _least(need, ok) if max_rate is not None and max_rate < need else None
    return required, add, raise_to


def suggest(
    waves: list[WavePlan], *, rate: float, segments_per_message: int, route_segments_per_s: float,
    max_rate: float | None, quiet: QuietHours | None = None, default_zone: str = "UTC",
) -> Suggestions:
    """The three changes for a plan that runs at ``rate`` messages/s (its capacity: the
    routes' ``route_segments_per_s`` over ``segments_per_message``, capped by ``max_rate``)."""
    need = required_rate(waves, quiet=quiet, default_zone=default_zone)
    required = add = raise_to = None
    if need is not None and need != float("inf"):
        required, add, raise_to = _rates(
            need, max(segments_per_message, 1), route_segments_per_s, max_rate,
            lambda r: _meets(waves, r, quiet, default_zone))
    fits = most_that_fit(waves, rate, quiet=quiet, default_zone=default_zone)
    return Suggestions(
        start_earlier_s=start_earlier_s(waves, rate, quiet=quiet, default_zone=default_zone),
        required_segments_per_s=required, add_segments_per_s=add, max_rate_at_least=raise_to,
        fits=fits, lower_audience_by=None if fits is None else sum(w.messages for w in waves) - sum(fits),
    )

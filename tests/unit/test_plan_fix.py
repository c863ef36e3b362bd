"""The rate a plan needs and the changes that make a missed plan meet (``scheduler.forecast``,
``scheduler.advice``), as properties over random waves, rates and quiet hours. Pure.

"A bit less" is 1e-4 of the rate (the forecast's times are whole microseconds, and every
generated plan sends for a second or more), one second of an earlier start, one recipient."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.advice import most_that_fit, start_earlier_s, suggest
from scheduler.forecast import (
    RATE_FLOOR,
    QuietHours,
    WavePlan,
    meets,
    message_capacity,
    pacing_rate,
    required_rate,
)

EPS = 1e-4
T0 = datetime(2026, 3, 7, 12, tzinfo=UTC)  # a US spring-forward night falls in the plans
ZONES = ["America/New_York", "America/Chicago", "America/Los_Angeles", "Pacific/Honolulu",
         "Asia/Kolkata", "Australia/Lord_Howe"]

waves_st = st.lists(
    st.builds(
        lambda zone, fire_min, n, due_min: WavePlan(
            zone, T0 + timedelta(minutes=fire_min), n,
            None if due_min is None else T0 + timedelta(minutes=fire_min + due_min)),
        st.sampled_from(ZONES), st.integers(0, 36 * 60), st.integers(0, 20_000),
        st.one_of(st.none(), st.integers(1, 12 * 60)),
    ),
    min_size=1, max_size=6,
)
quiet_st = st.one_of(st.none(), st.builds(
    lambda a, b: QuietHours(time(a // 60, a % 60), time(b // 60, b % 60)),
    st.integers(0, 24 * 60 - 1), st.integers(0, 24 * 60 - 1)))
SLOW = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _meets(waves: list[WavePlan], rate: float, quiet: QuietHours | None) -> bool:
    return rate > 0 and meets(waves, rate, quiet=quiet)


def _planned(waves: list[WavePlan], capacity: float, quiet: QuietHours | None) -> bool:
    """Whether the plan the scheduler would run (paced within ``capacity``) meets."""
    return _meets(waves, pacing_rate(waves, capacity, quiet=quiet), quiet)


@SLOW
@given(waves_st, quiet_st)
def test_required_rate_is_the_least_rate_that_meets(waves: list[WavePlan], quiet: QuietHours | None) -> None:
    need = required_rate(waves, quiet=quiet)
    if need is None:
        assert not any(w.deadline_at and w.messages for w in waves)
        return
    if need == float("inf"):
        assert not _meets(waves, 1e9, quiet)
        return
    assert _meets(waves, need, quiet)
    assert need >= RATE_FLOOR
    if need > RATE_FLOOR:
        assert not _meets(waves, need * (1 - EPS), quiet)


@SLOW
@given(waves_st, quiet_st, st.floats(0.5, 200.0))
def test_the_earliest_start_suggested_meets_and_a_second_later_misses(
    waves: list[WavePlan], quiet: QuietHours | None, rate: float,
) -> None:
    shift = start_earlier_s(waves, rate, quiet=quiet)
    if shift is None:
        return

    def moved(s: int) -> list[WavePlan]:
        return [replace(w, fire_at=w.fire_at - timedelta(seconds=s)) for w in waves]

    assert _meets(moved(shift), rate, quiet)
    assert _planned(moved(shift), rate, quiet)
    if shift:
        assert not _meets(moved(shift - 1), rate, quiet)


@SLOW
@given(waves_st, quiet_st, st.floats(0.5, 200.0))
def test_the_most_that_fit_meet_and_one_more_in_any_cut_wave_misses(
    waves: list[WavePlan], quiet: QuietHours | None, rate: float,
) -> None:
    fits = most_that_fit(waves, rate, quiet=quiet)
    if fits is None:
        assert not _meets([replace(w, messages=0) for w in waves], rate, quiet)
        return
    kept = [replace(w, messages=n) for w, n in zip(waves, fits, strict=True)]
    assert all(0 <= n <= w.messages for w, n in zip(waves, fits, strict=True))
    assert _meets(kept, rate, quiet)
    assert _planned(kept, rate, quiet)
    for i, w in enumerate(waves):
        if fits[i] < w.messages:
            more = [*kept[:i], replace(w, messages=fits[i] + 1), *kept[i + 1:]]
            assert not _meets(more, rate, quiet)


@SLOW
@given(waves_st, quiet_st, st.integers(1, 4), st.floats(1.0, 500.0),
       st.one_of(st.none(), st.floats(0.5, 300.0)))
def test_the_capacity_suggested_meets_and_a_bit_less_misses(
    waves: list[WavePlan], quiet: QuietHours | None, segs: int, routes: float, max_rate: float | None,
) -> None:
    capacity = message_capacity(routes, segs, max_rate)
    fix = suggest(waves, rate=capacity, segments_per_message=segs, route_segments_per_s=routes,
                  max_rate=max_rate, quiet=quiet)
    if _meets(waves, capacity, quiet) or fix.required_segments_per_s is None:
        return
    more = routes + (fix.add_segments_per_s or 0.0)
    cap = fix.max_rate_at_least or max_rate
    assert fix.add_segments_per_s is not None or fix.max_rate_at_least is not None
    assert _planned(waves, message_capacity(more, segs, cap), quiet)
    if fix.add_segments_per_s is not None:
        less = more - fix.required_segments_per_s * EPS
        assert not _meets(waves, message_capacity(less, segs, cap), quiet)
    if fix.max_rate_at_least is not None:
        assert not _meets(waves, message_capacity(more, segs, fix.max_rate_at_least * (1 - EPS)), quiet)

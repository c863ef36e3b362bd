"""Waves released side by side share the run's rate (``bench.ordering``: how the scheduler
released a run's waves before it released them in order), pure.

Hand-computed cases (run-now: every wave fires at once; a wave joining mid-way; quiet hours
pausing one zone while the others take its share), and Hypothesis properties: with waves that
do not overlap it is the plan's forecast, quiet hours included; without quiet hours it sends
at the full rate whenever a wave has work (the last finish is the work over the rate)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bench.ordering import side_by_side
from scheduler.forecast import QuietHours, WavePlan, forecast

T0 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
ZONES = ["America/New_York", "America/Chicago", "America/Los_Angeles", "Pacific/Honolulu",
         "Asia/Kolkata", "Europe/London"]
_US = timedelta(microseconds=1)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _finishes(waves: list[WavePlan], rate: float, quiet: QuietHours | None = None
              ) -> dict[str | None, datetime]:
    return {f.time_zone: f.finishes_at for f in side_by_side(waves, rate, quiet=quiet)}


def test_waves_fired_together_share_the_rate_equally() -> None:
    """100, 100 and 400 messages at 30/s: 10/s each until the small two are done at 10 s,
    then the last one alone at 30/s for its remaining 300: 20 s."""
    waves = [WavePlan("A", T0, 100), WavePlan("B", T0, 100), WavePlan("C", T0, 400)]
    assert _finishes(waves, 30) == {"A": _at(10), "B": _at(10), "C": _at(20)}


def test_a_wave_fired_later_takes_its_share_from_then_on() -> None:
    """A (300) alone at 10/s for 10 s (100 sent), then A and B (100) at 5/s each: B done
    20 s later, A with 100 left alone again: done at 40 s."""
    waves = [WavePlan("A", T0, 300), WavePlan("B", _at(10), 100)]
    assert _finishes(waves, 10) == {"A": _at(40), "B": _at(30)}


def test_a_zone_in_quiet_hours_leaves_its_share_to_the_others() -> None:
    """Quiet 21:00-08:00: at 18:00 UTC it is 23:00 in Kolkata (quiet until 02:30 UTC) and
    13:00 in New York: New York sends alone at the full rate."""
    quiet = QuietHours(time(21), time(8))
    waves = [WavePlan("America/New_York", T0, 3600), WavePlan("Asia/Kolkata", T0, 3600)]
    forecasts = {f.time_zone: f for f in side_by_side(waves, 1.0, quiet=quiet)}
    assert forecasts["America/New_York"].finishes_at == _at(3600)
    kolkata = forecasts["Asia/Kolkata"]
    assert kolkata.starts_at == datetime(2026, 11, 28, 2, 30, tzinfo=UTC)
    assert kolkata.finishes_at == datetime(2026, 11, 28, 3, 30, tzinfo=UTC)


def test_an_empty_wave_finishes_when_it_fires_and_a_rate_of_zero_is_refused() -> None:
    assert _finishes([WavePlan("A", _at(5), 0), WavePlan("B", T0, 10)], 1) == {
        "A": _at(5), "B": _at(10)}
    with pytest.raises(ValueError, match="positive"):
        side_by_side([WavePlan("A", T0, 1)], 0)


def test_a_plan_too_slow_for_the_simulation_overflows() -> None:
    quiet = QuietHours(time(0, 0, 1), time(0))  # open one second a day
    with pytest.raises(OverflowError):
        side_by_side([WavePlan("UTC", T0, 10**9)], 1.0, quiet=quiet)


waves_st = st.lists(
    st.tuples(st.sampled_from(ZONES), st.integers(0, 12 * 3600), st.integers(0, 100_000)),
    min_size=1, max_size=5, unique_by=lambda w: w[0],
)
quiets = st.one_of(st.none(), st.tuples(st.integers(0, 23), st.integers(0, 23)).map(
    lambda h: QuietHours(time(h[0]), time(h[1]))))


@settings(max_examples=200, deadline=None)
@given(waves_st, st.floats(0.5, 5000), quiets)
def test_waves_that_do_not_overlap_finish_as_the_forecast_says(
    spec: list[tuple[str, int, int]], rate: float, quiet: QuietHours | None,
) -> None:
    """Each wave done before the next fires: nobody shares, so side by side is the plan's
    one-after-another forecast (to a microsecond per pause, the two round differently)."""
    waves = [WavePlan(z, _at(f), n) for z, f, n in spec]
    planned = forecast(waves, rate, quiet=quiet)
    fires = sorted(w.fire_at for w in waves)
    assume(all(p.finishes_at <= nxt for p, nxt in zip(planned, fires[1:], strict=False)))
    shared = side_by_side(waves, rate, quiet=quiet)
    for p, s in zip(planned, shared, strict=True):
        assert p.time_zone == s.time_zone
        slack = _US * (2 + (p.finishes_at - p.starts_at).days * 4)
        assert abs(s.finishes_at - p.finishes_at) <= slack
        if p.messages:
            assert abs(s.starts_at - p.starts_at) <= slack


@settings(max_examples=200, deadline=None)
@given(waves_st, st.floats(0.5, 5000))
def test_without_quiet_hours_the_rate_is_never_left_unused(
    spec: list[tuple[str, int, int]], rate: float,
) -> None:
    """Fired together, the last wave ends when all the work is done at the full rate, and a
    smaller wave never ends after a larger one."""
    waves = [WavePlan(z, T0, n) for z, _, n in spec]
    shared = side_by_side(waves, rate)
    total = sum(n for _, _, n in spec)
    last = max(s.finishes_at for s in shared)
    assert abs((last - T0).total_seconds() - total / rate) <= 1e-6 * len(spec) + 1e-9 * total
    by_size = sorted(shared, key=lambda s: s.messages)
    assert all(a.finishes_at <= b.finishes_at for a, b in zip(by_size, by_size[1:], strict=False))

"""Leak detection over a soak's samples: flat series (noisy or not) never leak, a ramp over the
whole run does, a warm-up that rises then stays flat levels off, and the unit of the values does
not change the verdict; the report's :func:`leaks` names the series that keep growing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hexcast.chaos.growth import LeakRule, Point, growth, slope
from hexcast.chaos.report import leaks
from hexcast.chaos.sampling import ProcessStat, Sample

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@st.composite
def times(draw: st.DrawFn, *, min_size: int = 9) -> list[float]:
    """Sample times: a steady period (1 s to 10 min) with up to ±10 % jitter, from any origin."""
    n = draw(st.integers(min_value=min_size, max_value=120))
    step = draw(st.floats(min_value=1.0, max_value=600.0))
    origin = draw(st.floats(min_value=0.0, max_value=1e6))
    jitter = draw(st.lists(st.floats(min_value=-0.1, max_value=0.1), min_size=n, max_size=n))
    return [origin + (i + j) * step for i, j in enumerate(jitter)]


def noise(data: st.DataObject, n: int, amplitude: float) -> list[float]:
    return data.draw(st.lists(st.floats(min_value=-amplitude, max_value=amplitude), min_size=n, max_size=n))


@given(times(), st.floats(min_value=0.0, max_value=1e12))
def test_a_constant_never_leaks(at: list[float], level: float) -> None:
    assert growth([(t, level) for t in at]).leveled_off


@given(st.data(), times(), st.floats(min_value=1.0, max_value=1e12))
def test_flat_with_noise_within_two_percent_never_leaks(data: st.DataObject, at: list[float],
                                                         level: float) -> None:
    wobble = noise(data, len(at), 0.02)
    assert growth([(t, level * (1 + e)) for t, e in zip(at, wobble, strict=True)]).leveled_off


@given(times(), st.floats(min_value=1.0, max_value=1e9), st.floats(min_value=0.0, max_value=4.0))
def test_a_ramp_over_the_whole_run_leaks(at: list[float], rise: float, base: float) -> None:
    """It rises by at least a fifth of its peak (``base`` ≤ 4 × ``rise``), steadily to the end."""
    span = at[-1] - at[0]
    verdict = growth([(t, base * rise + rise * (t - at[0]) / span) for t in at])
    assert not verdict.leveled_off
    assert verdict.per_hour == pytest.approx(rise / span * 3600)


@given(st.data(), times(), st.floats(min_value=1.0, max_value=1e9),
       st.floats(min_value=0.0, max_value=4.0), st.floats(min_value=0.0, max_value=0.3))
def test_a_warm_up_then_flat_levels_off(data: st.DataObject, at: list[float], rise: float, base: float,
                                        warm: float) -> None:
    """It rises by ``rise`` (a fifth of its peak or more) over the first ``warm`` of the run,
    then stays there, with noise of up to 0.5 % of the peak throughout."""
    span, peak = at[-1] - at[0], (base + 1) * rise
    wobble = noise(data, len(at), 0.005 * peak)
    points = [(t, base * rise + rise * min((t - at[0]) / (warm * span or 1), 1.0) + e)
              for t, e in zip(at, wobble, strict=True)]
    assert growth(points).leveled_off


@given(times(min_size=3), st.data(), st.integers(min_value=-20, max_value=20))
def test_the_unit_does_not_change_the_verdict(at: list[float], data: st.DataObject, power: int) -> None:
    """Any series, in other units (a power of two, so the scaling itself is exact)."""
    values = data.draw(st.lists(st.floats(min_value=0.0, max_value=1e9), min_size=len(at), max_size=len(at)))
    points = list(zip(at, values, strict=True))
    scaled = [(t, v * 2.0**power) for t, v in points]
    assert growth(scaled).leveled_off == growth(points).leveled_off


def test_too_few_samples_are_not_judged() -> None:
    ramp: list[Point] = [(60.0 * i, 100.0 * i) for i in range(8)]
    verdict = growth(ramp)
    assert verdict.leveled_off
    assert "too few" in verdict.reason
    assert not growth(ramp, LeakRule(min_points=8)).leveled_off


def test_an_absolute_floor_lets_slow_growth_pass() -> None:
    ramp = [(60.0 * i, 1000.0 + i) for i in range(240)]  # +60 per hour, +24 % over four hours
    assert not growth(ramp).leveled_off
    assert growth(ramp, LeakRule(floor_per_hour=100.0)).leveled_off


def test_slope_is_least_squares_per_second() -> None:
    assert slope([(0.0, 1.0), (10.0, 3.0), (20.0, 5.0)]) == pytest.approx(0.2)
    assert slope([(5.0, 1.0), (5.0, 9.0)]) == 0.0
    assert slope([(5.0, 1.0)]) == 0.0


def test_a_leak_rule_is_validated() -> None:
    with pytest.raises(ValidationError):
        LeakRule(fraction=1.5)


def soak(rss: dict[str, list[int]], *, every: timedelta = timedelta(minutes=1)) -> list[Sample]:
    n = len(next(iter(rss.values())))
    return [Sample(at=START + i * every,
                   processes={name: ProcessStat(rss_bytes=v[i], open_fds=40, cpu_seconds=float(i))
                              for name, v in rss.items()},
                   tables={"messages": 8192 * (i + 1)}, redis_used_bytes=2_000_000, redis_keys=10,
                   topic_records={"send.bulk": 1000 * i}, messages_by_state={"sent": 500 * i})
            for i in range(n)]


def test_leaks_name_the_process_that_keeps_growing() -> None:
    samples = soak({"sender-bulk": [50_000_000 + 400_000 * i for i in range(60)],
                    "matcher": [80_000_000 + 1000 * (i % 3) for i in range(60)],
                    "api": [60_000_000 + min(i, 10) * 2_000_000 for i in range(60)]})
    found = leaks(samples)
    assert [leak.split(":")[0] for leak in found] == ["rss/sender-bulk"]
    assert "still growing" in found[0]


def test_tables_and_topics_growing_with_traffic_are_no_leak() -> None:
    assert leaks(soak({"scheduler": [70_000_000] * 60})) == []
    assert leaks(soak({"scheduler": [70_000_000] * 60}), keys={"postgres", "topics"}) != []


def test_a_sample_survives_json() -> None:
    [sample] = soak({"api": [123]})
    assert Sample.from_json(sample.to_json()) == sample
    with pytest.raises(ValidationError):
        Sample.from_json('{"at": "2025-06-01T12:00:00Z"}')

"""Campaign results arithmetic: group rates, holdout lift and its interval, conversions, send rate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.footfall import store_index
from analysis.results import (
    black_friday,
    converted_users,
    group_rates,
    holdout_lift,
    interest_segments,
    send_rate_series,
)
from hexcast.core.errors import InvalidInput
from scheduler.forecast import WavePlan, forecast
from targeting.geofence import destination
from targeting.models import StoreCreate
from targeting.service import fence_cells

T0 = datetime(2026, 11, 27, 23, tzinfo=UTC)


@dataclass(frozen=True)
class Out:
    user_id: str
    state: str
    clicked: bool = False
    opted_out: bool = False


def test_group_rates_count_overlapping_groups_and_skip_the_ungrouped() -> None:
    outcomes = [Out("a", "delivered", clicked=True), Out("b", "delivered", opted_out=True),
                Out("c", "failed"), Out("d", "delivered")]
    rows = {r.group: r for r in group_rates(outcomes, {"a": ["x", "y"], "b": ["x"], "c": ["y"]})}
    assert set(rows) == {"x", "y"}
    assert (rows["x"].messages, rows["x"].delivered, rows["x"].clicks, rows["x"].opt_outs) == (2, 2, 1, 1)
    assert (rows["x"].click_rate, rows["x"].opt_out_rate, rows["x"].delivery_rate) == (0.5, 0.5, 1.0)
    assert rows["y"].delivery_rate == 0.5
    assert group_rates([Out("c", "failed")], {"c": ["z"]})[0].click_rate == 0.0


def test_lift_matches_the_textbook_wald_interval() -> None:
    lift = holdout_lift(treated=1000, treated_conversions=300, control=500, control_conversions=100)
    assert lift.absolute == pytest.approx(0.1)
    assert lift.relative == pytest.approx(0.5)
    se = math.sqrt(0.3 * 0.7 / 1000 + 0.2 * 0.8 / 500)
    assert lift.low == pytest.approx(0.1 - 1.959964 * se, abs=1e-6)
    assert lift.high == pytest.approx(0.1 + 1.959964 * se, abs=1e-6)
    wider = holdout_lift(treated=1000, treated_conversions=300, control=500, control_conversions=100,
                         confidence=0.99)
    assert wider.low < lift.low < lift.high < wider.high


@given(st.integers(1, 5000), st.integers(1, 5000), st.floats(0, 1), st.floats(0, 1))
def test_the_interval_always_holds_the_estimate(nt: int, nc: int, ft: float, fc: float) -> None:
    lift = holdout_lift(treated=nt, treated_conversions=round(nt * ft), control=nc,
                        control_conversions=round(nc * fc))
    assert lift.low <= lift.absolute <= lift.high
    assert -1 <= lift.absolute <= 1


@pytest.mark.parametrize("kwargs", [
    {"treated": 0, "treated_conversions": 0, "control": 5, "control_conversions": 1},
    {"treated": 5, "treated_conversions": 6, "control": 5, "control_conversions": 1},
    {"treated": 5, "treated_conversions": 1, "control": 5, "control_conversions": 1, "confidence": 1.0},
])
def test_bad_lift_input_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        holdout_lift(**kwargs)  # type: ignore[arg-type]


def test_conversions_are_store_visits_inside_the_window() -> None:
    store = {"id": 1, "tenant_id": 1, "lat": 41.88, "lng": -87.63,
             "geofence": {"type": "circle", "radius_m": 100}}

    store["cells"] = fence_cells(StoreCreate.model_validate({
        "name": "s", "lat": 41.88, "lng": -87.63, "time_zone": "America/Chicago",
        "geofence": store["geofence"]}), resolution=10)
    index = store_index([store], resolution=10)
    inside = destination(41.88, -87.63, 30, 90)
    outside = destination(41.88, -87.63, 400, 90)
    visits = [("in", *inside, T0 + timedelta(hours=1)), ("early", *inside, T0 - timedelta(minutes=1)),
              ("late", *inside, T0 + timedelta(hours=73)), ("away", *outside, T0 + timedelta(hours=1))]
    assert converted_users(index, visits, since=T0, window=timedelta(hours=72)) == {"in"}


def test_send_rate_follows_the_forecast_and_sums_to_the_messages() -> None:
    plans = [WavePlan("America/New_York", T0, 600), WavePlan("America/Chicago", T0 + timedelta(hours=1), 300)]
    waves = forecast(plans, 2.0)
    series = send_rate_series(waves, 2.0, start=T0 - timedelta(minutes=10), end=T0 + timedelta(hours=2),
                              step=timedelta(minutes=1))
    assert len(series) == 130
    sent = sum(sum(shares.values()) for _, shares in series) * 60
    assert sent == pytest.approx(900)
    at = dict(series)
    assert at[T0]["America/New_York"] == 2.0
    assert at[T0 + timedelta(minutes=5)]["America/New_York"] == 0.0  # 600 at 2/s: 5 minutes
    assert at[T0 + timedelta(minutes=61)]["America/Chicago"] == 2.0
    assert at[T0 + timedelta(minutes=62)]["America/Chicago"] == 1.0  # 300 at 2/s: 2.5 minutes
    with pytest.raises(InvalidInput):
        send_rate_series(waves, 2.0, start=T0, end=T0, step=timedelta(minutes=1))


@pytest.mark.parametrize(("year", "day"), [(2024, date(2024, 11, 29)), (2025, date(2025, 11, 28)),
                                           (2026, date(2026, 11, 27)), (2027, date(2027, 11, 26))])
def test_black_friday(year: int, day: date) -> None:
    assert black_friday(year) == day


def test_interest_segments_use_the_hierarchical_rule() -> None:
    segments = {"tech": ["electronics"], "style": ["fashion", "beauty/skincare"]}
    got = interest_segments({"a": ["electronics/phones"], "b": ["beauty/skincare", "fashion"],
                             "c": ["electronicsx", "beauty"], "d": []}, segments)
    assert got == {"a": ["tech"], "b": ["style"], "c": [], "d": []}

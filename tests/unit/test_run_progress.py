"""Run lifecycle and live projection, pure (``scheduler.progress``, ``scheduler.metrics``).

When a run is finished (receipts awaited up to a window), the state it ends in, how its rate
is measured, and the projection per zone: with a constant rate it is the plan's own forecast
(Hypothesis), zones fired together go earliest deadline first, a run exactly on plan projects
its planned finish, and the senders' backlog counts on the zones released last."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.forecast import QuietHours, WavePlan, forecast
from scheduler.lifecycle import RunSnapshot, quiet_hours
from scheduler.metrics import campaign_gauges
from scheduler.progress import (
    WARMUP_S,
    Tally,
    ZoneProjection,
    ZoneState,
    end_state,
    is_finished,
    measured_rate,
    measuring_window,
    project,
)

T0 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
ZONES = ["America/New_York", "America/Chicago", "America/Los_Angeles", "Pacific/Honolulu"]


def _zone(wave_id: int, *, fire_s: float = 0, planned: int = 1000, released: int = 0,
          state: str = "pending", started_s: float | None = None, zone: str | None = None,
          deadline_s: float | None = None, finished_s: float | None = None) -> ZoneState:
    def at(s: float | None) -> datetime | None:
        return None if s is None else T0 + timedelta(seconds=s)

    return ZoneState(wave_id, zone, T0 + timedelta(seconds=fire_s), at(deadline_s), planned,
                     released, state, at(started_s), at(finished_s))


# ------------------------------------------------------------------------------ finishing
@pytest.mark.parametrize(("released", "all_released", "tally", "finished"), [
    (100, False, Tally(100, 100), False),  # a wave still to release
    (100, True, Tally(99, 99, idle_s=10_000), False),  # one message still with the senders
    (100, True, Tally(100, 100, idle_s=0), True),  # every one final
    (100, True, Tally(100, 97, idle_s=30), False),  # 3 accepted, receipts awaited
    (100, True, Tally(100, 97, idle_s=600), True),  # ... no longer: they never come
    (0, True, Tally(), True),  # an empty audience
    (100, True, Tally(103, 103, idle_s=0), True),  # a chunk republished past its checkpoint
])
def test_a_run_is_finished_when_every_message_has_its_outcome(
    released: int, all_released: bool, tally: Tally, finished: bool,
) -> None:
    assert is_finished(released=released, all_released=all_released, tally=tally,
                       receipt_wait_s=600) is finished


def test_the_end_state_says_whether_anything_expired() -> None:
    assert end_state("running", {"delivered": 10, "suppressed": 2}, 0) == "finished"
    assert end_state("running", {"delivered": 10, "expired": 1}, 0) == "finished_with_expired"
    assert end_state("running", {"delivered": 10}, 5) == "finished_with_expired"
    assert end_state("cancelled", {"expired": 3}, 0) == "cancelled"


# ------------------------------------------------------------------------------ measuring
def test_the_rate_is_measured_over_the_last_minute_of_sending() -> None:
    releasing = [_zone(1, released=500, state="releasing", started_s=0)]
    assert measuring_window([_zone(1)], now=T0 + timedelta(hours=1)) is None  # not started
    assert measuring_window(releasing, now=T0 + timedelta(seconds=WARMUP_S / 2)) is None
    assert measuring_window(releasing, now=T0 + timedelta(seconds=30)) == 30
    assert measuring_window(releasing, now=T0 + timedelta(minutes=5)) == 60
    assert measured_rate(120, window_s=60, planned_rate=5, idle=False) == 2
    assert measured_rate(0, window_s=None, planned_rate=5, idle=False) == 5  # warming up
    assert measured_rate(0, window_s=60, planned_rate=5, idle=True) == 5  # between zones


def test_the_window_spans_the_waves_released_one_after_another() -> None:
    """Waves of 3 s each, one after another: at 15 s the run has sent for 15 s (a window of
    15 s, not 3 s of the latest wave, which would keep the planned rate forever). A wave
    that fired after a pause starts a new stretch, which warms up again."""
    chain = [_zone(1, state="done", started_s=0, finished_s=3, released=10),
             _zone(2, state="done", started_s=3.5, finished_s=6.5, released=10),
             _zone(3, state="done", started_s=7, finished_s=10, released=10),
             _zone(4, state="releasing", started_s=12, released=10)]
    assert measuring_window(chain, now=T0 + timedelta(seconds=15)) == 15
    paused = [*chain[:3], _zone(4, fire_s=600, state="releasing", started_s=600.5, released=10)]
    assert measuring_window(paused, now=T0 + timedelta(seconds=605)) is None
    assert measuring_window(paused, now=T0 + timedelta(seconds=630)) == 29.5


def test_quiet_hours_at_the_head_of_the_line_are_no_measure() -> None:
    """At 23:00 in New York nothing is sent there: a rate of 0 then is the plan, not a stall."""
    zones = [_zone(1, zone="America/New_York", state="releasing", started_s=-7200)]
    quiet = QuietHours(time(21), time(8))
    at_23 = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # 23:00 in New York
    at_12 = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 12:00
    assert measuring_window(zones, now=at_23, quiet=quiet) is None
    assert measuring_window(zones, now=at_12, quiet=quiet) == 60


def test_the_tenants_window_narrows_the_legal_one() -> None:
    assert quiet_hours(None, None) == QuietHours(time(21), time(8))
    assert quiet_hours(time(10), time(18)) == QuietHours(time(18), time(10))
    assert quiet_hours(time(6), time(23)) == QuietHours(time(21), time(8))


# ------------------------------------------------------------------------------ projecting
plans = st.lists(
    st.tuples(st.sampled_from(ZONES), st.integers(0, 6 * 3600), st.integers(0, 200_000)),
    min_size=1, max_size=4, unique_by=lambda p: p[0],
)
quiets = st.one_of(st.none(), st.tuples(st.integers(0, 23), st.integers(0, 23)).map(
    lambda h: QuietHours(time(h[0]), time(h[1]))))


@settings(max_examples=150, deadline=None)
@given(plans, st.floats(0.5, 5000), quiets, st.integers(0, 3600))
def test_the_projection_at_a_constant_rate_is_the_forecast(
    waves: list[tuple[str, int, int]], rate: float, quiet: QuietHours | None, later_s: int,
) -> None:
    """Zones not started yet, projected at a measured rate, finish where the plan's own
    forecast at that rate says, quiet hours included."""
    now = T0 - timedelta(seconds=later_s)
    zones = [_zone(i, zone=z, fire_s=f, planned=n, deadline_s=f + 3600)
             for i, (z, f, n) in enumerate(waves)]
    projected = {p.wave_id: p for p in project(zones, backlog=0, rate=rate, now=now, quiet=quiet)}
    expected = forecast([WavePlan(z.time_zone, z.fire_at, z.planned, z.deadline_at)
                         for z in zones if z.planned], rate, quiet=quiet)
    by_zone = {f.time_zone: f for f in expected}
    for z in zones:
        p = projected[z.wave_id]
        assert p.remaining == z.planned
        if z.planned:
            assert p.projected_finish_at == by_zone[z.time_zone].finishes_at
            assert p.at_risk is not by_zone[z.time_zone].meets_deadline
        else:
            assert (p.projected_finish_at, p.at_risk) == (None, False)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 500_000), st.floats(1, 5000), st.floats(0.01, 0.99))
def test_a_run_on_plan_projects_the_planned_finish(n: int, rate: float, part: float) -> None:
    """A single zone sent at exactly its rate (what it released all settled): at any point
    the projection is its planned finish, to within one message."""
    planned = T0 + timedelta(seconds=n / rate)
    now = T0 + (planned - T0) * part
    sent = math.floor(rate * (now - T0).total_seconds())
    zones = [_zone(1, planned=n, released=sent, state="releasing", started_s=0)]
    [p] = project(zones, backlog=0, rate=rate, now=now)
    assert abs((p.projected_finish_at or now) - planned) <= timedelta(seconds=1 / rate + 1e-3)


def test_zones_fired_together_are_projected_earliest_deadline_first() -> None:
    """Run-now fires every zone at once; the scheduler releases them one after another,
    earliest deadline first (as the plan): at 10/s, C (deadline 1 h) then A then B."""
    zones = [_zone(1, zone="A", planned=100, deadline_s=7200),
             _zone(2, zone="B", planned=400, deadline_s=9000),
             _zone(3, zone="C", planned=100, deadline_s=3600)]
    found = {p.wave_id: p.projected_finish_at for p in project(zones, backlog=0, rate=10, now=T0)}
    assert found == {3: T0 + timedelta(seconds=10), 1: T0 + timedelta(seconds=20),
                     2: T0 + timedelta(seconds=60)}


def test_the_senders_backlog_counts_on_the_zones_released_last() -> None:
    """The backlog is the last messages released: 250 of them, the zone releasing now has
    released 100, so 150 are the end of the zone released before it."""
    zones = [_zone(1, fire_s=0, planned=1000, released=1000, state="done", started_s=0),
             _zone(2, fire_s=0, planned=1000, released=1000, state="done", started_s=60),
             _zone(3, fire_s=0, planned=1000, released=100, state="releasing", started_s=160),
             _zone(4, fire_s=7200, planned=1000)]
    now = T0 + timedelta(seconds=170)
    left = {p.wave_id: p.remaining for p in project(zones, backlog=250, rate=10, now=now)}
    assert left == {1: 0, 2: 150, 3: 900 + 100, 4: 1000}


def test_a_zone_is_at_risk_when_projected_after_its_deadline_or_never() -> None:
    deadline = T0 + timedelta(hours=1)
    late = ZoneProjection(1, "UTC", 10, 1.0, deadline + timedelta(seconds=90), deadline)
    never = ZoneProjection(2, "UTC", 10, 0.0, None, deadline)
    done = ZoneProjection(3, "UTC", 0, 1.0, None, deadline)
    in_time = ZoneProjection(4, "UTC", 10, 1.0, deadline, deadline)
    assert [(z.at_risk, z.late_s) for z in (late, never, done, in_time)] == [
        (True, 90.0), (True, math.inf), (False, 0.0), (False, 0.0)]
    stalled = project([_zone(1, released=10, state="releasing", started_s=0, deadline_s=60)],
                      backlog=0, rate=0.0, now=T0 + timedelta(seconds=30))
    assert [(p.projected_finish_at, p.at_risk) for p in stalled] == [(None, True)]


def test_the_gauges_name_tenant_campaign_and_zone() -> None:
    deadline = T0 + timedelta(hours=1)
    snap = RunSnapshot(
        run={"tenant_id": 7, "campaign_id": 3, "campaign_zone": "America/Chicago"}, waves=[],
        tally=Tally(settled=5), tally_rows=0, rate_per_s=2.5, measured=True, zones=[
            ZoneProjection(1, "America/New_York", 10, 2.5, deadline + timedelta(seconds=30), deadline),
            ZoneProjection(2, None, 5, 2.5, None, deadline),
            ZoneProjection(3, "Pacific/Honolulu", 0, 2.5, None, None)])
    g = campaign_gauges([snap])
    ny, chicago, honolulu = (("7", "3", z) for z in (
        "America/New_York", "America/Chicago", "Pacific/Honolulu"))
    assert g.late == {ny: 30.0, chicago: math.inf, honolulu: 0.0}
    assert g.remaining == {ny: 10, chicago: 5, honolulu: 0}
    # a finish only where messages are left (never: +Inf), a deadline only where there is one
    assert g.finish == {ny: (deadline + timedelta(seconds=30)).timestamp(), chicago: math.inf}
    assert g.deadline == {ny: deadline.timestamp(), chicago: deadline.timestamp()}
    assert g.progress == {("7", "3"): 0.25}  # 5 settled of 5 + 15 left
    assert g.rate == {("7", "3"): 2.5}


def test_a_campaigns_unfinished_runs_add_up_and_nothing_left_is_done() -> None:
    deadline = T0 + timedelta(hours=1)

    def snap(settled: int, left: int, finish: datetime | None) -> RunSnapshot:
        return RunSnapshot(
            run={"tenant_id": 7, "campaign_id": 3, "campaign_zone": "UTC"}, waves=[],
            tally=Tally(settled=settled), tally_rows=0, rate_per_s=1.0, measured=True,
            zones=[ZoneProjection(1, "UTC", left, 1.0, finish, deadline)])

    g = campaign_gauges([snap(10, 10, deadline - timedelta(seconds=5)),
                         snap(0, 20, deadline + timedelta(seconds=60))])
    assert g.remaining == {("7", "3", "UTC"): 30}
    assert g.late == {("7", "3", "UTC"): 60.0}
    assert g.finish == {("7", "3", "UTC"): (deadline + timedelta(seconds=60)).timestamp()}
    assert g.progress == {("7", "3"): 0.25}
    assert g.rate == {("7", "3"): 2.0}
    assert campaign_gauges([snap(0, 0, None)]).progress == {("7", "3"): 1.0}

"""Cron fires and recipient-local waves across DST changes; forecast and pacing. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.forecast import WavePlan, forecast, pacing_rate, required_rate
from scheduler.service import Campaign, Fire, ZoneCount, due_fire, plan_waves
from scheduler.timing import localize, next_fire, validate_cron
from sender.models import Lane
from targeting.segments import SegmentDefinition

NY = ZoneInfo("America/New_York")
ZONES = ["Pacific/Honolulu", "America/Phoenix", "America/Chicago", "Asia/Kolkata", "Australia/Lord_Howe"]


def _fires(expr: str, zone: ZoneInfo, start: datetime, n: int) -> list[datetime]:
    out, after = [], start
    for _ in range(n):
        _, after = next_fire(expr, zone, after)
        out.append(after)
    return out


def test_daily_nine_new_york_across_both_dst_changes() -> None:
    spring = _fires("0 9 * * *", NY, datetime(2026, 3, 6, 15, tzinfo=UTC), 3)
    assert spring == [datetime(2026, 3, 7, 14, tzinfo=UTC), datetime(2026, 3, 8, 13, tzinfo=UTC),
                      datetime(2026, 3, 9, 13, tzinfo=UTC)]
    fall = _fires("0 9 * * *", NY, datetime(2026, 10, 30, 15, tzinfo=UTC), 3)
    assert fall == [datetime(2026, 10, 31, 13, tzinfo=UTC), datetime(2026, 11, 1, 14, tzinfo=UTC),
                    datetime(2026, 11, 2, 14, tzinfo=UTC)]
    assert all(f.astimezone(NY).hour == 9 for f in spring + fall)


def test_skipped_hour_fires_once_shifted_and_repeated_hour_fires_once() -> None:
    # 02:30 does not exist on 2026-03-08 in New York: fires at 03:30 EDT (07:30Z), once.
    skipped = _fires("30 2 * * *", NY, datetime(2026, 3, 7, 12, tzinfo=UTC), 2)
    assert skipped == [datetime(2026, 3, 8, 7, 30, tzinfo=UTC), datetime(2026, 3, 9, 6, 30, tzinfo=UTC)]
    # 01:30 happens twice on 2026-11-01: fires at the first one (EDT, 05:30Z) only.
    repeated = _fires("30 1 * * *", NY, datetime(2026, 10, 31, 12, tzinfo=UTC), 2)
    assert repeated == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC), datetime(2026, 11, 2, 6, 30, tzinfo=UTC)]
    # every 30 minutes across the repeated hour: no instant twice, never backwards
    halves = _fires("*/30 * * * *", NY, datetime(2026, 11, 1, 4, tzinfo=UTC), 8)
    assert halves == sorted(set(halves))
    assert len(halves) == 8


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(["America/New_York", *ZONES, "Europe/London"]),
       day=st.dates(min_value=datetime(2026, 1, 1).date(), max_value=datetime(2027, 12, 31).date()),
       hour=st.integers(0, 23), minute=st.sampled_from([0, 15, 30, 45]))
def test_daily_cron_fires_once_per_local_day_at_its_wall_time(zone: str, day: object, hour: int,
                                                              minute: int) -> None:
    tz = ZoneInfo(zone)
    start = datetime.combine(day, datetime.min.time()).replace(tzinfo=tz) - timedelta(hours=1)  # type: ignore[call-overload]
    fires = _fires(f"{minute} {hour} * * *", tz, start.astimezone(UTC), 3)
    days = [f.astimezone(tz).date() for f in fires]
    assert len(set(days)) == 3
    assert fires == sorted(fires)
    for f in fires:
        local = f.astimezone(tz)
        wall = local.replace(tzinfo=None).replace(hour=hour, minute=minute)
        if localize(wall, tz).astimezone(tz).replace(tzinfo=None) == wall:  # the wall time exists
            assert (local.hour, local.minute) == (hour, minute)
        else:  # skipped: shifted forward by the gap, within 2 hours
            assert timedelta(0) < local.replace(tzinfo=None) - wall <= timedelta(hours=2)


def _campaign(**kw: object) -> Campaign:
    base: dict[str, object] = dict(
        id=7, tenant_id=1, body="Hi {first_name}", segment=SegmentDefinition(everyone=True),
        cron="0 9 * * *", run_at=None, time_zone="America/Chicago", time_mode="recipient_local",
        deadline=None, max_rate=None, lane=Lane.BULK, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    base.update(kw)
    return Campaign(**base)  # type: ignore[arg-type]


def test_recipient_local_waves_fire_at_nine_in_each_zone() -> None:
    c = _campaign()
    for wall in (datetime(2026, 3, 8, 9), datetime(2026, 4, 5, 9), datetime(2026, 11, 1, 9),
                 datetime(2026, 10, 4, 9)):
        fire = Fire(wall, localize(wall, ZoneInfo("Etc/GMT-14")))
        plans = plan_waves(c, fire, [ZoneCount(z, 10, 0) for z in ZONES])
        assert {p.time_zone for p in plans} == set(ZONES)
        for p in plans:
            local = p.fire_at.astimezone(ZoneInfo(p.time_zone or ""))
            assert (local.date(), local.hour, local.minute) == (wall.date(), 9, 0), p
    # Kolkata +05:30 and Lord Howe's half-hour DST: exact instants.
    wall = datetime(2026, 4, 5, 9)  # Lord Howe leaves DST (+11 → +10:30) at 02:00 that day
    plans = {p.time_zone: p.fire_at for p in plan_waves(
        c, Fire(wall, localize(wall, ZoneInfo("Etc/GMT-14"))), [ZoneCount(z, 1, 0) for z in ZONES])}
    assert plans["Asia/Kolkata"] == datetime(2026, 4, 5, 3, 30, tzinfo=UTC)
    assert plans["Australia/Lord_Howe"] == datetime(2026, 4, 4, 22, 30, tzinfo=UTC)
    assert plans["America/Phoenix"] == datetime(2026, 4, 5, 16, tzinfo=UTC)
    assert plans["Pacific/Honolulu"] == datetime(2026, 4, 5, 19, tzinfo=UTC)
    assert plans["America/Chicago"] == datetime(2026, 4, 5, 14, tzinfo=UTC)


def test_due_runs_fixed_and_local() -> None:
    fixed = _campaign(time_mode="fixed", time_zone="America/New_York")
    grace = timedelta(hours=1)
    now = datetime(2026, 3, 8, 13, 0, 30, tzinfo=UTC)  # 09:00:30 EDT
    fire = due_fire(fixed, last=None, now=now, grace=grace)
    assert fire is not None
    assert fire.first_fire_at == datetime(2026, 3, 8, 13, tzinfo=UTC)
    assert due_fire(fixed, last=fire.scheduled_for, now=now, grace=grace) is None
    local = _campaign(created_at=datetime(2026, 3, 7, 10, tzinfo=UTC))
    early = datetime(2026, 3, 7, 19, 0, 30, tzinfo=UTC)  # 09:00 on 03-08 at UTC+14
    fire = due_fire(local, last=None, now=early, grace=grace)
    assert fire is not None
    assert fire.scheduled_for == datetime(2026, 3, 8, 9)
    assert due_fire(local, last=fire.scheduled_for, now=early, grace=grace) is None
    later = _campaign()  # created long ago: the previous wall's western waves are still due
    fire = due_fire(later, last=datetime(2026, 3, 7, 9), now=early, grace=grace)
    assert fire is not None
    assert fire.scheduled_for == datetime(2026, 3, 8, 9)
    deadline = _campaign(time_mode="fixed", deadline=datetime(2026, 3, 8, 8))
    assert due_fire(deadline, last=None, now=now, grace=grace) is None


def test_bad_cron_is_rejected() -> None:
    for bad in ("61 * * * *", "0 9 * *", "0 0 30 2 *", "nonsense"):
        with pytest.raises(ValueError, match="cron"):
            validate_cron(bad)


def test_forecast_and_required_rate() -> None:
    t0 = datetime(2026, 11, 26, 14, tzinfo=UTC)
    waves = [WavePlan("A", t0, 3600, t0 + timedelta(hours=2)),
             WavePlan("B", t0 + timedelta(hours=1), 7200, t0 + timedelta(hours=3))]
    # B alone needs 7200/2h = 1/s; A+B need 10800/3h = 1/s; A alone 0.5/s
    assert required_rate(waves) == pytest.approx(1.0)
    out = forecast(waves, 1.0)
    assert out[0].finishes_at == t0 + timedelta(hours=1)
    assert out[1].starts_at == t0 + timedelta(hours=1)
    assert all(w.meets_deadline for w in out)
    slow = forecast(waves, 0.5)
    assert not slow[1].meets_deadline
    assert pacing_rate(waves, capacity=100.0) == pytest.approx(10.0)  # the floor
    big = [WavePlan("A", t0, 360_000, t0 + timedelta(hours=2))]
    assert pacing_rate(big, capacity=100.0) == pytest.approx(60.0)  # 50/s needed, 20% margin
    assert pacing_rate(waves, capacity=0.8) == 0.8


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 36), st.integers(1, 48)),
                min_size=1, max_size=8))
def test_required_rate_meets_every_deadline(spec: list[tuple[int, int, int]]) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    waves = [WavePlan(str(i), t0 + timedelta(hours=s), n, t0 + timedelta(hours=s + d))
             for i, (n, s, d) in enumerate(spec)]
    need = required_rate(waves)
    if sum(n for n, _, _ in spec) == 0:
        assert need is None
        return
    assert need is not None
    for w in forecast(waves, need * 1.000001):
        assert w.finishes_at <= w.deadline_at + timedelta(seconds=1)  # type: ignore[operator]


def test_quiet_hours_delay_and_pause_a_wave() -> None:
    from datetime import time

    from scheduler.forecast import QuietHours

    quiet = QuietHours(time(21), time(8))
    chicago = "America/Chicago"
    t0 = datetime(2026, 11, 26, 2, tzinfo=UTC)  # 20:00 CST: one hour before quiet hours
    # 2 hours of sending: 1 h before 21:00, then a pause until 08:00, then 1 h → 09:00 CST
    out = forecast([WavePlan(chicago, t0, 7200)], 1.0, quiet=quiet)
    assert out[0].starts_at == t0
    assert out[0].finishes_at == datetime(2026, 11, 26, 15, tzinfo=UTC)
    # fired inside quiet hours: starts at 08:00 local
    late = forecast([WavePlan(chicago, datetime(2026, 11, 26, 5, tzinfo=UTC), 60)], 1.0, quiet=quiet)
    assert late[0].starts_at == datetime(2026, 11, 26, 14, tzinfo=UTC)
    # the deadline at 22:00 CST needs the hour before quiet hours to carry everything: 2/s
    due = [WavePlan(chicago, t0, 7200, datetime(2026, 11, 26, 4, tzinfo=UTC))]
    assert required_rate(due, quiet=quiet) == pytest.approx(2.0, rel=1e-3)
    assert required_rate(due) == pytest.approx(1.0)  # without quiet hours: 7200 over 2 h


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 20_000), st.integers(0, 47), st.sampled_from(ZONES))
def test_quiet_hours_never_send_inside_the_window(n: int, hour: int, zone: str) -> None:
    from datetime import time

    from scheduler.forecast import QuietHours

    quiet = QuietHours(time(21), time(8))
    start = datetime(2026, 3, 7, tzinfo=UTC) + timedelta(hours=hour)
    out = forecast([WavePlan(zone, start, n)], 1.0, quiet=quiet)[0]
    local_start = out.starts_at.astimezone(ZoneInfo(zone)).time()
    if n:
        assert time(8) <= local_start < time(21)
    assert out.finishes_at - out.starts_at >= timedelta(seconds=n)


def test_settle_sample_is_evenly_spaced_with_both_ends() -> None:
    from scheduler.runner import _sample

    keys = [f"k{n}" for n in range(1000)]
    probe = _sample(keys, 16)
    assert len(probe) == 16
    assert (probe[0], probe[-1]) == ("k0", "k999")
    gaps = {int(b[1:]) - int(a[1:]) for a, b in zip(probe, probe[1:], strict=False)}
    assert gaps <= {66, 67}
    assert _sample(keys[:5], 16) == keys[:5]

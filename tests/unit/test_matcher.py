"""The matcher's pure logic: local hours, ranking, per-visit limit, accuracy, entry/dwell, order."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.matcher import DECAY_M, MatchResult, MatchState
from streams.models import VisitEvent, VisitRecord
from targeting.geofence import CircleFence, cover_cells, destination, fence_geometry
from targeting.models import CatalogRecord, DailyHours, ProfileRecord, PromotionEntry, StoreEntry

CHICAGO = (41.8827, -87.6233)
RES = 10
T0 = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)  # a Monday, 12:00 in Chicago


def add_store(state: MatchState, sid: int, where: tuple[float, float], *, zone: str = "America/Chicago",
              radius: float = 100.0, accuracy: float = 100.0, tenant: int = 1) -> None:
    fence = {"type": "circle", "radius_m": radius}
    geom = fence_geometry(CircleFence(type="circle", radius_m=radius), lat=where[0], lng=where[1])
    entry = StoreEntry(lat=where[0], lng=where[1], time_zone=zone, geofence=fence,
                       cells=cover_cells(geom, resolution=RES), accuracy_max_m=accuracy)
    state.apply_catalog(CatalogRecord(kind="store", id=sid, tenant_id=tenant, active=True, store=entry))


def add_promo(state: MatchState, pid: int, sid: int, interests: list[str] | None = None,
              *, active: bool = True, tenant: int = 1, **policy: Any) -> None:
    entry = PromotionEntry(store_id=sid, body=f"promo {pid}", interests=interests or [],
                           valid_from=None, valid_until=None, **policy)
    state.apply_catalog(CatalogRecord(kind="promotion", id=pid, tenant_id=tenant, active=active,
                                      promotion=entry))


def world(interests: list[str] | None = None) -> MatchState:
    state = MatchState(resolution=RES, ttl=timedelta(minutes=30))
    state.apply_profile(ProfileRecord(tenant_id=1, user_id="u", phone="+13125550100", time_zone=None,
                                      interests=interests or ["electronics/phones"], consent=True,
                                      opted_out=False))
    return state


def ev(eid: str, ts: datetime, where: tuple[float, float] = CHICAGO, accuracy: float = 10.0) -> VisitEvent:
    return VisitEvent(event_id=eid, lat=where[0], lng=where[1], accuracy_m=accuracy, ts=ts)


def visit(state: MatchState, *events: VisitEvent, per_visit: int = 1) -> MatchResult:
    record = VisitRecord(tenant_id=1, user_id="u", events=list(events), received_at=T0)
    return state.match(record, max_per_visit=per_visit)


def fired(result: MatchResult) -> list[list[int]]:
    """Promotion ids each triggering event produced, ranked."""
    return [[c.promotion_id for c in v.candidates] for v in result.visits]


# ------------------------------------------------------------------- hours, weekdays, zones


def test_hours_and_weekdays_are_in_the_stores_local_time_far_from_utc() -> None:
    state = world()
    add_store(state, 1, CHICAGO, zone="Pacific/Kiritimati")  # UTC+14
    add_promo(state, 10, 1, hours=DailyHours(start=time(9), end=time(12)), weekdays=[1])
    # Sunday 20:30 UTC is Monday 10:30 in Kiritimati: inside.
    assert fired(visit(state, ev("a", datetime(2026, 11, 29, 20, 30, tzinfo=UTC)))) == [[10]]
    state = world()
    add_store(state, 1, CHICAGO, zone="Pacific/Kiritimati")
    add_promo(state, 10, 1, hours=DailyHours(start=time(9), end=time(12)), weekdays=[1])
    # Monday 10:30 UTC is Tuesday 00:30 there: wrong weekday and hour.
    late = visit(state, ev("b", datetime(2026, 11, 30, 10, 30, tzinfo=UTC)))
    assert late.visits == []
    assert late.counts["outside_hours"] == 1


@pytest.mark.parametrize(("policy", "fires"), [
    ({}, True),
    ({"weekdays": [2, 3, 4, 5, 6, 7]}, False),  # every day but Monday
    ({"weekdays": [1]}, True),
    ({"valid_from": datetime(2026, 12, 1).date()}, False),
    ({"valid_from": datetime(2026, 11, 30).date()}, True),
    ({"hours": DailyHours(start=time(13), end=time(20))}, False),
])
def test_each_restriction_on_its_own_applies(policy: dict[str, Any], fires: bool) -> None:
    # T0 is Monday 2026-11-30, 12:00 in Chicago.
    state = world()
    add_store(state, 1, CHICAGO)
    entry = PromotionEntry(store_id=1, body="x", interests=[], valid_until=None,
                           **{"valid_from": None, **policy})
    state.apply_catalog(CatalogRecord(kind="promotion", id=10, tenant_id=1, active=True,
                                      promotion=entry))
    result = visit(state, ev("a", T0))
    assert fired(result) == ([[10]] if fires else [])
    assert result.counts["outside_hours"] == (0 if fires else 1)


def test_window_across_midnight_and_valid_dates_use_the_local_date() -> None:
    state = world()
    add_store(state, 1, CHICAGO, zone="Asia/Tokyo")  # UTC+9
    entry = dict(hours=DailyHours(start=time(22), end=time(2)))
    add_promo(state, 10, 1, **entry)
    assert fired(visit(state, ev("a", datetime(2026, 11, 30, 16, 30, tzinfo=UTC)))) == [[10]]  # 01:30
    assert visit(state, ev("b", datetime(2026, 11, 30, 18, 0, tzinfo=UTC))).counts["outside_hours"] == 1
    # 2026-11-30 15:30 UTC is already 2026-12-01 in Tokyo: a promotion ending on the 30th is over.
    state = world()
    add_store(state, 1, CHICAGO, zone="Asia/Tokyo")
    state.apply_catalog(CatalogRecord(kind="promotion", id=11, tenant_id=1, active=True,
                                      promotion=PromotionEntry(store_id=1, body="x", interests=[],
                                                               valid_from=None,
                                                               valid_until=datetime(2026, 11, 30).date())))
    assert visit(state, ev("c", datetime(2026, 11, 30, 15, 30, tzinfo=UTC))).visits == []
    # The same instant an hour earlier is still the 30th there, but older than "c": ignored.
    assert fired(visit(state, ev("d", datetime(2026, 11, 30, 14, 30, tzinfo=UTC)))) == []
    assert fired(visit(world_with(11), ev("e", datetime(2026, 11, 30, 14, 30, tzinfo=UTC)))) == [[11]]


def world_with(pid: int) -> MatchState:
    state = world()
    add_store(state, 1, CHICAGO, zone="Asia/Tokyo")
    state.apply_catalog(CatalogRecord(kind="promotion", id=pid, tenant_id=1, active=True,
                                      promotion=PromotionEntry(store_id=1, body="x", interests=[],
                                                               valid_from=None,
                                                               valid_until=datetime(2026, 11, 30).date())))
    return state


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 1439), length=st.integers(1, 1439), at=st.integers(0, 1439))
def test_daily_hours_contain_exactly_the_minutes_from_start_to_end(start: int, length: int, at: int) -> None:
    end = (start + length) % 1440

    def t(m: int) -> time:
        return time(m // 60, m % 60)

    hours = DailyHours(start=t(start), end=t(end))
    assert hours.contains(t(at)) == ((at - start) % 1440 < length)


@settings(max_examples=60, deadline=None)
@given(instant=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31),
                            timezones=st.just(UTC)),
       zone=st.sampled_from(["Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kathmandu",
                             "America/St_Johns", "Europe/London", "America/Chicago"]))
def test_a_promotion_applies_exactly_in_its_local_hour_and_weekday(instant: datetime, zone: str) -> None:
    from zoneinfo import ZoneInfo

    local = instant.astimezone(ZoneInfo(zone))
    state = world()
    add_store(state, 1, CHICAGO, zone=zone)
    add_promo(state, 10, 1, hours=DailyHours(start=time(local.hour), end=time((local.hour + 1) % 24)),
              weekdays=[local.isoweekday()])
    assert fired(visit(state, ev("a", instant))) == [[10]]
    other = world()
    add_store(other, 1, CHICAGO, zone=zone)
    add_promo(other, 10, 1, weekdays=[d for d in range(1, 8) if d != local.isoweekday()])
    assert other.match(VisitRecord(tenant_id=1, user_id="u", events=[ev("a", instant)],
                                   received_at=T0)).visits == []


# ------------------------------------------------------------------- ranking and limits


def test_interest_weights_rank_promotions_of_one_store() -> None:
    state = world(["electronics/phones"])
    add_store(state, 1, CHICAGO)
    add_promo(state, 10, 1, ["electronics"])  # user is deeper: full weight 1
    add_promo(state, 11, 1, ["electronics/phones"], interest_weights={"electronics/phones": 3.0})
    add_promo(state, 12, 1, [])  # everyone: 0.5
    add_promo(state, 13, 1, ["garden"])  # no interest
    result = visit(state, ev("a", T0))
    assert fired(result) == [[11, 10, 12]]
    assert [c.score for c in result.visits[0].candidates] == [3.0, 1.0, 0.5]
    assert [r.promotion_id for r in result.requests] == [11]


def test_broader_user_interest_scores_half_per_level() -> None:
    state = world(["electronics"])
    add_store(state, 1, CHICAGO)
    add_promo(state, 10, 1, ["electronics/phones/android"])
    assert [c.score for c in visit(state, ev("a", T0)).visits[0].candidates] == [0.25]


def test_in_fence_beats_nearby_and_nearby_decays_with_distance() -> None:
    state = world(["electronics"])
    add_store(state, 1, CHICAGO, radius=50)
    near = destination(*CHICAGO, 150, 90)  # fence edge at ~100 m from the visit
    far = destination(*CHICAGO, 300, 0)
    add_store(state, 2, near, radius=50)
    add_store(state, 3, far, radius=50)
    add_promo(state, 10, 1, ["electronics"])
    add_promo(state, 20, 2, ["electronics"], nearby_m=400, interest_weights={"electronics": 5.0})
    add_promo(state, 30, 3, ["electronics"], nearby_m=400, interest_weights={"electronics": 5.0})
    add_promo(state, 31, 3, ["electronics"], nearby_m=100)  # too far for its own radius
    result = visit(state, ev("a", T0), per_visit=2)
    cands = result.visits[0].candidates
    assert [c.promotion_id for c in cands] == [10, 20, 30]
    assert [c.in_fence for c in cands] == [True, False, False]
    assert cands[1].score == pytest.approx(5.0 * math.exp(-100 / DECAY_M), rel=0.02)
    assert cands[2].score == pytest.approx(5.0 * math.exp(-250 / DECAY_M), rel=0.02)
    assert [r.promotion_id for r in result.requests] == [10, 20]


def test_at_most_n_per_visit() -> None:
    state = world(["electronics"])
    add_store(state, 1, CHICAGO)
    for pid in (10, 11, 12):
        add_promo(state, pid, 1, ["electronics"])
    assert len(visit(state, ev("a", T0), per_visit=1).requests) == 1
    state2 = world(["electronics"])
    add_store(state2, 1, CHICAGO)
    for pid in (10, 11, 12):
        add_promo(state2, pid, 1, ["electronics"])
    assert [r.promotion_id for r in visit(state2, ev("a", T0), per_visit=2).requests] == [10, 11]


def test_events_less_accurate_than_the_store_threshold_are_ignored_and_counted() -> None:
    state = world()
    add_store(state, 1, CHICAGO, accuracy=50)
    add_promo(state, 10, 1)
    vague = visit(state, ev("a", T0, accuracy=80))
    assert vague.visits == []
    assert vague.counts["accuracy"] == 1
    assert fired(visit(state, ev("b", T0 + timedelta(seconds=1), accuracy=30))) == [[10]]


def test_reasons_are_counted() -> None:
    state = world(["garden"])
    add_store(state, 1, CHICAGO)
    add_promo(state, 10, 1, ["electronics"])
    far = destination(*CHICAGO, 5000, 0)
    result = visit(state, ev("a", T0), ev("b", T0 + timedelta(seconds=5), far))
    assert result.counts == {"visits": 2, "no_interest": 1, "no_geofence": 1}
    stranger = VisitRecord(tenant_id=1, user_id="nobody", events=[ev("c", T0)], received_at=T0)
    assert state.match(stranger).counts == {"visits": 1, "no_profile": 1}


def test_other_tenants_stores_and_deactivated_promotions_do_not_match() -> None:
    state = world()
    add_store(state, 1, CHICAGO, tenant=2)
    add_promo(state, 10, 1, tenant=2)
    add_store(state, 3, destination(*CHICAGO, 20, 0))
    add_promo(state, 30, 3)
    add_promo(state, 30, 3, active=False)
    assert visit(state, ev("a", T0)).visits == []


# ------------------------------------------------------------------- entry, dwell, order


def entry_and_dwell(max_gap: int = 10) -> MatchState:
    state = world()
    add_store(state, 1, CHICAGO)
    add_promo(state, 10, 1, max_gap_minutes=max_gap)
    add_promo(state, 20, 1, trigger="dwell", dwell_minutes=5, max_gap_minutes=max_gap)
    return state


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_entry_fires_on_the_first_event_and_dwell_after_five_minutes() -> None:
    state = entry_and_dwell()
    result = visit(state, ev("a", at(0)), ev("b", at(2)), ev("c", at(4.9)), ev("d", at(5)), ev("e", at(9)))
    assert fired(result) == [[10], [20]]
    assert [v.event_id for v in result.visits] == ["a", "d"]
    assert result.counts["not_triggered"] == 3


def test_dwell_needs_every_gap_within_the_max_gap() -> None:
    state = entry_and_dwell(max_gap=3)
    result = visit(state, ev("a", at(0)), ev("b", at(4)), ev("c", at(6)), ev("d", at(8)), ev("e", at(9)))
    # a → b is a 4-minute gap: b starts a new stay (entry again), dwell counts from b.
    assert fired(result) == [[10], [10], [20]]
    assert [v.event_id for v in result.visits] == ["a", "b", "e"]


def test_leaving_the_fence_ends_the_stay() -> None:
    state = entry_and_dwell()
    away = destination(*CHICAGO, 2000, 0)
    result = visit(state, ev("a", at(0)), ev("b", at(3), away), ev("c", at(4)), ev("d", at(8)))
    assert fired(result) == [[10], [10]]
    assert [v.event_id for v in result.visits] == ["a", "c"]  # d is only 4 min after re-entry


def test_duplicate_events_never_trigger_twice() -> None:
    state = entry_and_dwell()
    first = visit(state, ev("a", at(0)), ev("b", at(5)))
    assert fired(first) == [[10], [20]]
    again = visit(state, ev("a", at(0)), ev("b", at(5)))
    assert again.visits == []
    assert again.counts["duplicate"] == 2


def test_older_events_arriving_late_are_ignored() -> None:
    state = entry_and_dwell()
    assert fired(visit(state, ev("late", at(6)))) == [[10]]  # entry, stay starts at 6
    old = visit(state, ev("early", at(0)), ev("early2", at(3)))
    assert old.visits == []
    assert old.counts["duplicate"] == 2
    assert fired(visit(state, ev("next", at(11)))) == [[20]]  # dwell from 6 → 11


def test_same_timestamp_distinct_events_are_both_seen() -> None:
    state = entry_and_dwell()
    assert fired(visit(state, ev("a", at(0)))) == [[10]]
    result = visit(state, ev("b", at(0)), ev("a", at(0)))
    assert result.counts["duplicate"] == 1
    assert result.counts["not_triggered"] == 1


def test_presence_is_pruned_for_idle_users() -> None:
    state = entry_and_dwell()
    visit(state, ev("a", at(0)))
    assert state.presence.prune(at(1)) == 1
    assert len(state.presence) == 0


def test_a_forgotten_profile_no_longer_matches() -> None:
    state = world()
    add_store(state, 1, CHICAGO)
    add_promo(state, 10, 1)
    assert fired(visit(state, ev("a", T0))) == [[10]]
    state.forget_profile("1:u")
    result = visit(state, ev("b", T0 + timedelta(minutes=1)))
    assert (result.visits, result.counts["no_profile"]) == ([], 1)
    state.forget_profile("1:nobody")  # unknown keys are fine


def test_presence_leaves_the_cyclic_collector_nothing_to_walk() -> None:
    """A matcher holds several stays per user; a full collection must not walk them."""
    import gc

    from streams.presence import UserPresence

    user = UserPresence()
    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    gap = timedelta(minutes=10)
    assert user.accept("e1", t0)
    assert user.accept("e2", t0)  # same instant, another event
    assert not user.accept("e1", t0)  # a redelivery
    assert user.step(1, t0, dwell=None, max_gap=gap)
    assert not user.step(2, t0, dwell=timedelta(minutes=5), max_gap=gap)
    assert user.step(2, t0 + timedelta(minutes=6), dwell=timedelta(minutes=5), max_gap=gap)
    gc.collect()
    assert not gc.is_tracked(user.stays)
    assert not any(gc.is_tracked(stay) for stay in user.stays.values())
    assert not gc.is_tracked(user.last_ids)

"""A lane's capacity through the routes (``sender.capacity``), against the buckets the senders
build for the same routes and settings, and its split over routes. Pure: buckets are built,
never called."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from hexcast.core.settings import load_settings
from sender.capacity import LaneCapacity, RouteCapacity, lane_capacity
from sender.models import Lane, ProviderSpec
from sender.routing import _bucket

URL = "http://127.0.0.1:9"


def _spec(name: str, **fields: object) -> ProviderSpec:
    return ProviderSpec.model_validate({"name": name, "url": URL, "token": "t", **fields})


@settings(max_examples=60, deadline=None)
@given(lane=st.sampled_from(list(Lane)), share=st.floats(0.0, 0.99), bulk=st.floats(0.01, 1.0),
       rate=st.one_of(st.none(), st.floats(0.5, 5000.0)), default=st.floats(1.0, 5000.0))
def test_a_route_gives_a_lane_what_the_senders_buckets_let_through(
    lane: Lane, share: float, bulk: float, rate: float | None, default: float,
) -> None:
    """The capacity of one route is the slowest of the buckets a grant on that lane takes
    from (the account, the marketing part, the bulk share), in segments/s."""
    spec = _spec("acct", rate_per_s=rate)
    s = load_settings(redis_prefix="t", sender_transactional_share=share, sender_bulk_share=bulk,
                      provider_rate_per_s=default)
    bucket, _ = _bucket(s, aioredis.Redis(), spec, lane)
    got = lane_capacity([spec], lane, 1, default_rate=default, transactional_share=share,
                        bulk_share=bulk)
    assert got.segments_per_s == pytest.approx(min(r for _, r, _ in bucket._buckets), rel=1e-12)


def test_only_routes_serving_the_lane_and_the_tenant_count() -> None:
    specs = [
        _spec("a", rate_per_s=100.0),  # every lane, every tenant
        _spec("b", rate_per_s=40.0, lanes=["bulk"], tenants=[7]),
        _spec("otp", rate_per_s=500.0, lanes=["otp", "transactional"]),
        _spec("us", rate_per_s=10.0, countries=["US"]),  # counted: countries are not read
        _spec("dryrun", kind="dryrun", rate_per_s=1000.0),
    ]
    def names(lane: Lane, tenant: int, dry_run: bool = False,
              unavailable: frozenset[str] = frozenset()) -> dict[str, float]:
        cap = lane_capacity(specs, lane, tenant, default_rate=1.0, transactional_share=0.2,
                            bulk_share=0.7, dry_run=dry_run, unavailable=unavailable)
        return {r.name: round(r.segments_per_s, 9) for r in cap.routes}

    assert names(Lane.BULK, 1) == {"a": 70.0, "us": 7.0}
    assert names(Lane.BULK, 7) == {"a": 70.0, "b": 28.0, "us": 7.0}
    assert names(Lane.GEO, 7) == {"a": 80.0, "us": 8.0}
    assert names(Lane.OTP, 1) == {"a": 100.0, "otp": 500.0, "us": 10.0}
    assert names(Lane.BULK, 1, dry_run=True) == {"dryrun": 700.0}
    assert names(Lane.BULK, 7, unavailable=frozenset({"a", "gone"})) == {"b": 28.0, "us": 7.0}


def test_a_single_message_api_with_a_request_limit_carries_that_many_messages() -> None:
    spec = _spec("twilio-like", mode="single", rate_per_s=100.0, requests_per_s=20.0)
    def bulk(route: ProviderSpec, segments: int = 1) -> float:
        return lane_capacity([route], Lane.BULK, 1, default_rate=1.0, transactional_share=0.0,
                             bulk_share=1.0, segments_per_message=segments).segments_per_s

    assert (bulk(spec), bulk(spec, 3)) == (20.0, 60.0)
    assert bulk(_spec("batch", rate_per_s=100.0, requests_per_s=20.0)) == 100.0  # 1,000 a request


def test_the_pace_goes_to_priority_one_by_weight_and_overflows_to_the_rest() -> None:
    cap = LaneCapacity(Lane.BULK, (RouteCapacity("a", 30.0, 1, 3), RouteCapacity("b", 100.0, 1, 1),
                                   RouteCapacity("c", 50.0, 2, 1)))
    assert cap.split(40.0) == pytest.approx({"a": 30.0, "b": 10.0, "c": 0.0})
    assert cap.split(20.0) == pytest.approx({"a": 15.0, "b": 5.0, "c": 0.0})
    assert cap.split(150.0) == pytest.approx({"a": 30.0, "b": 100.0, "c": 20.0})
    assert cap.split(1000.0) == pytest.approx({"a": 30.0, "b": 100.0, "c": 50.0})


@given(st.lists(st.tuples(st.floats(0.0, 500.0), st.integers(1, 3), st.integers(1, 100)),
                min_size=1, max_size=6), st.floats(0.0, 3000.0))
def test_a_split_never_exceeds_a_route_and_carries_the_pace_up_to_the_capacity(
    routes: list[tuple[float, int, int]], pace: float,
) -> None:
    cap = LaneCapacity(Lane.BULK, tuple(RouteCapacity(f"r{i}", c, p, w)
                                        for i, (c, p, w) in enumerate(routes)))
    split = cap.split(pace)
    assert all(split[r.name] <= r.segments_per_s * (1 + 1e-9) + 1e-9 for r in cap.routes)
    assert sum(split.values()) == pytest.approx(min(pace, cap.segments_per_s), rel=1e-9, abs=1e-6)

"""Process metrics, in process: the matcher's batched counts, gauges replaced by a refresh, the
consumer lag arithmetic, the api's request counter by route template, provider-sim's requests
and faults. Counters live in the default registry and other tests count too: each test reads
the change it makes."""

from __future__ import annotations

import asyncio
from collections import Counter as Counts

import httpx
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest

from hexcast.core.bodyguard import BodyGuard
from hexcast.core.http_metrics import RequestMetrics
from hexcast.core.kafka_lag import lag_of, our_groups
from hexcast.core.metrics import RefreshedGauge
from providersim.config import SimConfig
from providersim.ledger import Sim
from streams.metrics import MatcherMetrics


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_matcher_counts_move_to_the_counters_on_flush_by_tenant_and_reason() -> None:
    tenant = "910001"
    metrics = MatcherMetrics(every_s=3600)
    metrics.add(int(tenant), Counts(visits=3, triggered=2, matched=1, cooldown=1))
    metrics.add(int(tenant), Counts(visits=1, no_geofence=1, budget=0))
    assert not metrics.due()  # batched: nothing counted until the flush
    assert _value("hexcast_matcher_visits_total", tenant=tenant) == 0
    metrics.flush()
    assert [REGISTRY.get_sample_value(f"hexcast_matcher_{n}_total", {"tenant": tenant})
            for n in ("visits", "triggered", "matched", "budget_released")] == [4, 2, 1, 0]
    assert _value("hexcast_matcher_suppressed_total", tenant=tenant, reason="cooldown") == 1
    assert _value("hexcast_matcher_suppressed_total", tenant=tenant, reason="no_geofence") == 1
    assert REGISTRY.get_sample_value("hexcast_matcher_suppressed_total",
                                     {"tenant": tenant, "reason": "budget"}) is None
    metrics.flush()  # nothing pending: nothing counted twice
    assert _value("hexcast_matcher_visits_total", tenant=tenant) == 4


def test_a_refresh_replaces_every_series_of_a_gauge() -> None:
    registry = CollectorRegistry()
    gauge = RefreshedGauge(Gauge("lag", "lag", ["group", "partition"], registry=registry))
    gauge.replace({("a", "0"): 5.0, ("a", "1"): 2.0})
    gauge.replace({("a", "1"): 0.0, ("b", "0"): 1.0})
    text = generate_latest(registry).decode()
    assert 'lag{group="a",partition="0"}' not in text
    assert registry.get_sample_value("lag", {"group": "a", "partition": "1"}) == 0.0
    assert registry.get_sample_value("lag", {"group": "b", "partition": "0"}) == 1.0


def test_lag_is_end_minus_committed_on_the_topics_a_group_committed_on() -> None:
    ends = {("visits", 0): 10, ("visits", 1): 4, ("visits", 2): 5, ("delivery", 0): 7}
    starts = {("visits", 2): 1}
    committed = {("visits", 0): 6, ("visits", 1): 4, ("visits", 2): -1, ("delivery", 0): -1,
                 ("gone", 0): 3}
    # visits 2: nothing committed yet, read from its start; delivery: never committed, not read
    assert lag_of(committed, ends, starts) == {("visits", 0): 4, ("visits", 1): 0, ("visits", 2): 4}
    assert lag_of({("visits", 0): 12}, ends, {}) == {  # past the end: caught up
        ("visits", 0): 0, ("visits", 1): 4, ("visits", 2): 5}
    assert our_groups(["hexcast-matcher", "hexcast-sender-bulk", "other-app", "hexcastle-x",
                       "hexcast-matcher"], "hexcast") == ["hexcast-matcher", "hexcast-sender-bulk"]


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(RequestMetrics, router=app.router)
    return app


def test_requests_are_counted_by_route_template_and_status() -> None:
    def count(route: str, status: str) -> float:
        return _value("hexcast_http_requests_total", method="GET", route=route, status=status)

    before = [count("/things/{thing_id}", "200"), count("/things/{thing_id}", "422"),
              count("unmatched", "404"), count("/boom", "500")]

    async def calls() -> None:
        transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            for path in ("/things/1", "/things/2", "/things/x", "/nothing", "/boom"):
                await client.get(path)

    asyncio.run(calls())
    after = [count("/things/{thing_id}", "200"), count("/things/{thing_id}", "422"),
             count("unmatched", "404"), count("/boom", "500")]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1, 1]
    assert _value("hexcast_http_request_seconds_count", route="/things/{thing_id}") >= 3


def test_a_request_refused_before_routing_is_counted_under_its_route() -> None:
    """A body refused at the door (413) never reaches the router; its route is found among the
    routes of the routers the app includes (FastAPI keeps each one whole)."""
    things = APIRouter(prefix="/v1")

    @things.post("/things/{thing_id}")
    async def put_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app = FastAPI()
    app.include_router(things)
    app.add_middleware(BodyGuard, limit=10)
    app.add_middleware(RequestMetrics, router=app.router)

    def count() -> float:
        return _value("hexcast_http_requests_total", method="POST", route="/v1/things/{thing_id}",
                      status="413")

    before = count()

    async def calls() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            return (await client.post("/v1/things/7", content=b"x" * 100)).status_code

    assert asyncio.run(calls()) == 413
    assert count() - before == 1


def test_the_simulator_counts_requests_by_outcome_and_the_faults_it_injects() -> None:
    def counts() -> list[float]:
        return [_value("hexcast_sim_requests_total", dialect="vonage", outcome=o)
                for o in ("ok", "throttled", "error")] + [
                _value("hexcast_sim_faults_total", kind=k) for k in ("error", "garbled")]

    before = counts()
    sim = Sim(SimConfig(dialect="vonage", rate_per_s=1, rate_burst=1, garble_rate=1.0))
    assert sim.gate(1) is None
    assert sim.garbled_answer() is not None
    assert sim.gate(1) is not None  # over the rate: a 429
    sim.config = sim.config.model_copy(update={"fail_rate": 1.0})
    assert sim.gate(1) is not None
    after = counts()
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1, 1]
    assert sim.stats()["requests"] == 3

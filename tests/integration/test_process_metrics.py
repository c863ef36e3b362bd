"""Every process's own ``/metrics`` against what really happened, on one stack (provider-sim,
api, matcher, archiver, bulk sender, scheduler):

- the visit path: visits accepted and refused by the api, requests by route template, the
  matcher's visits, triggers, matches and suppressions per tenant, the archiver's visits and
  dead letters, compared with PostgreSQL's ``visits`` and the matcher's ``send.geo`` output;
- the scheduler: messages released per campaign (= the run's waves), unfinished runs by state
  (= ``campaign_runs``), a future run's remaining messages, deadline and projected finish (= its
  ``GET …/runs``), gone once the run ends; provider-sim's requests (= its ``/ledger/stats``) and
  an injected fault;
- Kafka consumer lag per group and partition: a stopped archiver's backlog, then 0.

Counters without a tenant label are compared by their change over the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from hexcast.core.bus import Bus
from hexcast.core.kafka_lag import ConsumerLag
from hexcast.core.settings import Settings
from hexcast.testing import (
    CAMPAIGN_PROCESSES,
    Stack,
    TenantRef,
    eventually,
    fetch_rows,
    make_settings,
    make_tenant,
    running_stack,
    wait_matcher_knows,
)
from hexcast.testing.scrape import Samples
from sender.models import Lane, SendBatch
from targeting.geofence import destination
from tests.integration.topickit import records_to_end

pytestmark = pytest.mark.e2e

PROCESSES = {**CAMPAIGN_PROCESSES, "matcher": ["matcher"], "archiver": ["archiver"]}
SHOP = (41.8827, -87.6233)
AWAY = destination(*SHOP, 1500, 180)
NOWHERE = destination(*SHOP, 50_000, 90)
CONSENT = {"at": "2026-01-01T00:00:00Z", "source": "app", "text": "Offers by SMS"}
PHONES = "+1628230"  # this file's numbers
GATE_REASONS = ("cooldown", "cap", "budget", "max_per_visit")


@pytest.fixture(scope="module")
def stack(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = make_settings(broker_url, database_url, scheduler_poll_s=0.5, matcher_cap_per_day=1)
    with running_stack(settings, tmp_path_factory.mktemp("logs"), PROCESSES) as running:
        yield running


def _tenant(stack: Stack, phones: list[str] = []) -> TenantRef:  # noqa: B006 - never mutated
    return asyncio.run(make_tenant(stack.settings.database_url, prefix="metrics", consenting=phones))


class Visitor:
    """A tenant with one store and promotion, posting visits through the api and counting them."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.tenant = _tenant(stack)
        self.api = httpx.Client(base_url=stack.api_url, timeout=10,
                                headers={"X-API-Key": self.tenant.api_key})
        self.tag = uuid.uuid4().hex[:6]
        self.events = 0  # visit events accepted
        self.posts = 0  # 202 answers

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        answer = self.api.post(path, json=body)
        assert answer.status_code == 201, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def shop(self) -> None:
        store = self.post("/v1/stores", name="shop", lat=SHOP[0], lng=SHOP[1],
                          time_zone="America/Chicago", geofence={"type": "circle", "radius_m": 100})
        self.post("/v1/promotions", store_id=store["id"], name="p", body="Hi", cooldown_minutes=120)

    def recipient(self, n: int) -> str:
        user = f"u{n}-{self.tag}"
        self.post("/v1/recipients", user_id=user, phone=f"{PHONES}{n:04d}", consent=CONSENT)
        wait_matcher_knows(self.stack, self.tenant.id, lambda: self.visit(user, NOWHERE))
        return user

    def visit(self, user: str, *places: tuple[float, float]) -> None:
        events = [{"event_id": f"{self.tag}-{self.events + i}", "user_id": user, "lat": lat,
                   "lng": lng, "accuracy_m": 10, "ts": datetime.now(UTC).isoformat()}
                  for i, (lat, lng) in enumerate(places)]
        answer = self.api.post("/v1/visits", json={"events": events})
        assert answer.status_code == 202, answer.text
        self.events += len(events)
        self.posts += 1

    def refused(self) -> None:
        """A malformed body, and a batch of three events one of which is invalid."""
        bad = self.api.post("/v1/visits", content=b"{not json",
                            headers={"content-type": "application/json"})
        events = [{"event_id": f"bad-{i}", "user_id": "x", "lat": 91 if i == 2 else 1, "lng": 1,
                   "ts": datetime.now(UTC).isoformat()} for i in range(3)]
        invalid = self.api.post("/v1/visits", json={"events": events})
        assert (bad.status_code, invalid.status_code) == (422, 422)


def _geo_sends(settings: Settings, tenant_id: int) -> int:
    """The send requests the matcher published on ``send.geo`` for the tenant."""
    return sum(1 for value in records_to_end(settings, Lane.GEO.topic)
               for item in SendBatch.decode(value).items if item.tenant_id == tenant_id)


async def _publish(settings: Settings, topic: str, value: bytes) -> None:
    bus = Bus(settings)
    await bus.start()
    try:
        await bus.publish(topic, "bad", value)
    finally:
        await bus.stop()


def _count(dsn: str, sql: str, *args: object) -> int:
    return int(asyncio.run(fetch_rows(dsn, sql, *args))[0][0])


def _change(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_the_visit_path_counts_what_the_api_matcher_and_archiver_did(stack: Stack) -> None:
    before = stack.scrape()
    v = Visitor(stack)
    v.shop()
    user = v.recipient(1)
    eventually(lambda: v.visit(user, AWAY, SHOP) or _geo_sends(stack.settings, v.tenant.id),
               timeout=30, every=0.5)  # the matcher may get the new store a moment later
    v.visit(user, AWAY, SHOP)  # a new stay within the cooldown, over the cap of 1 a day
    v.refused()
    asyncio.run(_publish(stack.settings, "visits", b"not a visit record"))
    tenant, dsn = str(v.tenant.id), stack.settings.database_url

    def counted() -> Samples | None:
        s = stack.scrape()
        done = (s.value("hexcast_matcher_visits_total", tenant=tenant) == v.events
                and _change(before, s, "hexcast_archiver_visits_total") == v.events
                and _change(before, s, "hexcast_archiver_dead_letters_total") == 1
                and sum(s.value("hexcast_matcher_suppressed_total", tenant=tenant, reason=r)
                        for r in GATE_REASONS) >= 1)
        return s if done else None

    s = eventually(counted, timeout=60, every=0.5)
    stored = _count(dsn, "SELECT count(*) FROM visits WHERE tenant_id = $1", v.tenant.id)
    assert s.value("hexcast_visits_accepted_total", tenant=tenant) == stored == v.events
    reasons = {dict(k)["reason"]: n for k, n in
               s.select("hexcast_matcher_suppressed_total", tenant=tenant).items()}
    matched, triggered = (s.value(f"hexcast_matcher_{n}_total", tenant=tenant)
                          for n in ("matched", "triggered"))
    assert matched == _geo_sends(stack.settings, v.tenant.id) == 1
    assert triggered == matched + sum(reasons.get(r, 0) for r in GATE_REASONS)
    assert triggered + sum(n for r, n in reasons.items() if r not in GATE_REASONS) == v.events
    assert reasons["no_geofence"] >= 1  # the stays away from the shop
    assert s.value("hexcast_matcher_budget_released_total", tenant=tenant) == 0
    assert s.select("hexcast_matcher_budget_released_total", tenant=tenant)  # the series exists
    assert _change(before, s, "hexcast_archiver_dead_letters_total", reason="bad_record") == 1
    assert _change(before, s, "hexcast_visits_rejected_total", reason="malformed_json") == 1
    assert _change(before, s, "hexcast_visits_rejected_total", reason="invalid") == 3
    visits = {"method": "POST", "route": "/v1/visits"}
    assert _change(before, s, "hexcast_http_requests_total", **visits, status="202") == v.posts
    assert _change(before, s, "hexcast_http_requests_total", **visits, status="422") == 2
    assert _change(before, s, "hexcast_http_request_seconds_count", route="/v1/visits") == v.posts + 2


def _campaign(api: httpx.Client, run_at: datetime, deadline: datetime, **extra: str) -> int:
    answer = api.post("/v1/campaigns", json={
        "name": "metrics", "body": "Hi, 20% off today", "segment": {"everyone": True},
        "run_at": run_at.replace(tzinfo=None, microsecond=0).isoformat(), "time_zone": "UTC",
        "deadline": deadline.replace(tzinfo=None, microsecond=0).isoformat(), **extra})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _run(api: httpx.Client, campaign_id: int) -> dict[str, Any] | None:
    runs = api.get(f"/v1/campaigns/{campaign_id}/runs").json()
    return runs[-1] if runs else None


def _campaign_series(stack: Stack, campaign_id: int) -> dict[str, float]:
    s = stack.scrape("scheduler")
    return {name: s.value(name, campaign=str(campaign_id)) for name in s.names()
            if name.startswith("hexcast_campaign_") and s.select(name, campaign=str(campaign_id))}


def test_the_scheduler_counts_what_it_released_and_projects_and_the_sim_what_it_answered(
    stack: Stack,
) -> None:
    dsn, now = stack.settings.database_url, datetime.now(UTC)
    sim_before = stack.scrape("provider-sim")
    sent = _tenant(stack, [f"{PHONES}1{i:03d}" for i in range(20)])
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": sent.api_key}, timeout=30) as api:
        now_id = _campaign(api, now, now + timedelta(hours=1))
        run = eventually(lambda: (r := _run(api, now_id)) and r["finished_at"] and r, timeout=90)
        assert run["counts"] == {"delivered": 20}
        released = stack.scrape("scheduler").value(
            "hexcast_scheduler_released_total", tenant=str(sent.id), campaign=str(now_id))
        assert released == sum(w["released"] for w in run["waves"]) == 20
        eventually(lambda: not _campaign_series(stack, now_id), timeout=30)  # a finished run: none

    later = _tenant(stack, [f"{PHONES}2{i:03d}" for i in range(7)])
    fire, deadline = now + timedelta(hours=2), now + timedelta(hours=3)
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": later.api_key}, timeout=30) as api:
        later_id = _campaign(api, fire, deadline, priority="reserved")  # its run is made now
        wave = eventually(lambda: (r := _run(api, later_id)) and r["waves"][0], timeout=30)
        zone = {"tenant": str(later.id), "campaign": str(later_id), "zone": "UTC"}
        gauges = eventually(lambda: _campaign_series(stack, later_id) or None, timeout=30)
        assert gauges["hexcast_campaign_remaining_messages"] == wave["remaining"] == 7
        due = datetime.fromisoformat(wave["deadline_at"])
        assert due == deadline.replace(microsecond=0)
        assert gauges["hexcast_campaign_deadline_timestamp_seconds"] == due.timestamp()
        assert gauges["hexcast_campaign_projected_finish_timestamp_seconds"] == pytest.approx(
            datetime.fromisoformat(wave["projected_finish_at"]).timestamp(), abs=1e-3)
        assert gauges["hexcast_campaign_projected_late_seconds"] == 0
        assert gauges["hexcast_campaign_progress_ratio"] == 0
        assert stack.scrape("scheduler").select("hexcast_campaign_remaining_messages", **zone)

        def runs_agree() -> bool:
            rows = asyncio.run(fetch_rows(dsn, "SELECT state, count(*) AS n FROM campaign_runs"
                                               " WHERE finished_at IS NULL GROUP BY state"))
            want = {"running": 0, "paused": 0, "cancelled": 0} | {r["state"]: r["n"] for r in rows}
            s = stack.scrape("scheduler")
            return {st: s.value("hexcast_scheduler_runs", state=st) for st in want} == want

        eventually(runs_agree, timeout=30)
        assert api.post(f"/v1/campaigns/{later_id}/cancel").status_code == 200
        eventually(lambda: not _campaign_series(stack, later_id), timeout=30)  # finished: gone

    _fault(stack)
    stats = httpx.get(f"{stack.sim_url}/ledger/stats").json()
    sim = stack.scrape("provider-sim")
    outcomes = {o: _change(sim_before, sim, "hexcast_sim_requests_total", dialect="generic", outcome=o)
                for o in ("ok", "throttled", "error")}
    assert sum(outcomes.values()) == stats["requests"]  # the sim was started for this module
    assert outcomes["throttled"] == stats["rate_limited"]
    assert outcomes["error"] == stats["injected_failures"] == 1
    assert _change(sim_before, sim, "hexcast_sim_faults_total", kind="error") == 1


def _fault(stack: Stack) -> None:
    """One request answered with an injected outage (503)."""
    sim = httpx.Client(base_url=stack.sim_url, timeout=10)
    try:
        assert sim.post("/control", json={"fail_rate": 1.0}).status_code == 200
        batch = {"messages": [{"client_ref": "metrics-fault", "to": f"{PHONES}9999", "body": "x"}]}
        answer = sim.post("/v1/batches", json=batch,
                          headers={"Authorization": f"Bearer {stack.settings.provider_token}"})
        assert answer.status_code == 503
    finally:
        sim.post("/control", json={"fail_rate": 0.0})
        sim.close()


def _lag(stack: Stack) -> dict[tuple[str, str, str], float]:
    """(group, topic, partition) → the scheduler's lag gauge."""
    found = stack.scrape("scheduler").select("hexcast_kafka_consumer_lag")
    labels = [(dict(k), n) for k, n in found.items()]
    return {(d["group"], d["topic"], d["partition"]): n for d, n in labels}


async def _broker_lag(settings: Settings) -> dict[tuple[str, str, int], int]:
    reader = ConsumerLag(settings)
    try:
        return await reader.read()
    finally:
        await reader.close()


def _archiver_lag(lag: Mapping[tuple[str, str, Any], float], group: str, topic: str) -> float:
    return sum(n for (g, t, _), n in lag.items() if (g, t) == (group, topic))


def _caught_up(stack: Stack, group: str) -> dict[tuple[str, str, str], float] | None:
    """The lag once ``group`` has a series and every series is 0."""
    lag = _lag(stack)
    return lag if any(g == group for g, _, _ in lag) and not any(lag.values()) else None


def test_consumer_lag_per_group_and_partition_counts_a_backlog_and_goes_to_zero(stack: Stack) -> None:
    s, app = stack.settings, stack.settings.app_id
    archiver, visits = f"{app}-archiver", s.topic("visits")
    asyncio.run(_publish(s, "send.bulk", b"not a send batch"))  # the bulk sender reads one too
    v = Visitor(stack)
    v.visit(f"lag-first-{v.tag}", NOWHERE)
    eventually(lambda: _caught_up(stack, archiver), timeout=60, every=1)
    stack.children["archiver"].terminate()
    # The gauge may have said "caught up" before the archiver committed lag-first: what the
    # stopped archiver left is read from the broker, and the gauge must add the four to it.
    left = _archiver_lag(asyncio.run(_broker_lag(s)), archiver, visits)
    for n in range(4):  # one record each
        v.visit(f"lag-{n}-{v.tag}", NOWHERE)
    eventually(lambda: _archiver_lag(_lag(stack), archiver, visits) == left + 4 or None,
               timeout=60, every=1)
    stack.children["archiver"].spawn()
    lag = eventually(lambda: _caught_up(stack, archiver), timeout=90, every=1)
    partitions = {str(p) for p in range(s.topic_partitions)}
    assert {(g, t) for g, t, _ in lag} >= {
        (archiver, visits), (f"{app}-matcher", visits), (f"{app}-sender-bulk", s.topic("send.bulk"))}
    assert {p for _, _, p in lag} <= partitions
    assert all(g.startswith(f"{app}-") for g, _, _ in lag)

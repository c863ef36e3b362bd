"""Geo targeting with real api and matcher processes, the real broker and Redis: catalog hot
reload, cooldowns and caps across a matcher crash, and promotion budgets given back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hexcast.core.bus import Bus
from hexcast.core.settings import Settings
from hexcast.testing import (
    Stack,
    clear_prefixes,
    eventually,
    make_settings,
    make_tenant,
    matcher_metrics,
    running_stack,
    wait_matcher_knows,
)
from sender.models import DeliveryEvent, Lane, MessageState, SendBatch, SendRequest, delivery_records
from targeting.geofence import destination
from tests.integration.topickit import records_to_end

pytestmark = pytest.mark.e2e

SHOP = (41.8827, -87.6233)
OTHER_SHOP = destination(*SHOP, 3000, 0)
AWAY = destination(*SHOP, 1500, 180)
NOWHERE = destination(*SHOP, 50_000, 90)  # no store of any test is near
CONSENT = {"at": "2026-01-01T00:00:00Z", "source": "app", "text": "Offers by SMS"}
RELOAD_S = 10.0  # a failure bound for polling, not a timing assertion


@pytest.fixture(scope="module")
def stack(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = make_settings(broker_url, database_url, matcher_cap_per_day=1)
    try:
        with running_stack(settings, tmp_path_factory.mktemp("geo"),
                           processes={"api": ["api"], "matcher": ["matcher"]}) as running:
            yield running
    finally:
        asyncio.run(clear_prefixes([settings.redis_prefix]))


class Tenant:
    """One tenant's API client, and what the matcher did for it."""

    def __init__(self, stack: Stack, database_url: str) -> None:
        self.stack = stack
        self.tag = uuid.uuid4().hex[:6]
        tenant = asyncio.run(make_tenant(database_url, name=f"geo-{self.tag}"))
        self.id = tenant.id
        self.api = httpx.Client(base_url=stack.api_url, headers={"X-API-Key": tenant.api_key}, timeout=10)
        self.posted = 0
        self.seq = 0

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        response = self.api.post(path, json=body)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    def store(self, where: tuple[float, float]) -> int:
        return int(self.post("/v1/stores", name="shop", lat=where[0], lng=where[1],
                             time_zone="America/Chicago",
                             geofence={"type": "circle", "radius_m": 100})["id"])

    def recipient(self, name: str) -> str:
        user = f"{name}-{self.tag}"
        self.seq += 1
        self.post("/v1/recipients", user_id=user, phone=f"+1312200{self.seq:04d}",
                  consent=CONSENT, interests=["electronics"])
        if self.posted:  # earlier visits counted first: the wait below compares counts
            self.processed()
        wait_matcher_knows(self.stack, self.id, lambda: self.visit(user, NOWHERE))
        return user

    def visit(self, user: str, *places: tuple[float, float]) -> None:
        events = []
        for lat, lng in places:
            self.seq += 1
            events.append({"event_id": f"{self.tag}-{self.seq}", "user_id": user, "lat": lat,
                           "lng": lng, "accuracy_m": 10, "ts": datetime.now(UTC).isoformat()})
        response = self.api.post("/v1/visits", json={"events": events})
        assert response.status_code == 202, response.text
        self.posted += len(events)

    def enter_until_sent(self, user: str, place: tuple[float, float]) -> list[SendRequest]:
        """Leave and re-enter ``place`` (a new stay each time) until the matcher sends to
        ``user``: a catalog change just made may take a moment to reach the matcher."""
        return eventually(lambda: self.visit(user, AWAY, place) or self.sends().get(user),
                          timeout=RELOAD_S, every=0.3)

    def metrics(self) -> dict[str, int]:
        return matcher_metrics(self.stack, self.id)

    def processed(self, **at_least: int) -> dict[str, int]:
        """Wait until the matcher counted every posted event and these counts are reached."""
        def check() -> dict[str, int] | None:
            m = self.metrics()
            ok = m.get("visits_total", 0) >= self.posted and all(
                m.get(k, 0) >= v for k, v in at_least.items())
            return m if ok else None
        return eventually(check, timeout=90)

    def sends(self) -> dict[str, list[SendRequest]]:
        """Send requests the matcher published on ``send.geo`` for this tenant, by user."""
        by_user: dict[str, list[SendRequest]] = {}
        for item in _send_requests(self.stack.settings):
            if item.tenant_id == self.id and item.user_id is not None:
                by_user.setdefault(item.user_id, []).append(item)
        return by_user


def _send_requests(settings: Settings) -> list[SendRequest]:
    return [item for value in records_to_end(settings, Lane.GEO.topic)
            for item in SendBatch.decode(value).items]


def _keys(sends: list[SendRequest]) -> set[str]:
    return {s.message_key for s in sends}


def test_catalog_changes_reach_the_running_matcher(stack: Stack, database_url: str) -> None:
    t = Tenant(stack, database_url)
    shop = t.store(SHOP)
    first, second, third = (t.recipient(n) for n in ("first", "second", "third"))
    t.visit(first, SHOP)
    assert t.processed().get("matched_total", 0) == 0

    promo = t.post("/v1/promotions", store_id=shop, name="p", body="Phones -20%",
                   interests=["electronics"])
    t.enter_until_sent(first, SHOP)
    assert [s.body for s in t.sends()[first]] == ["Phones -20%"]

    t.post(f"/v1/promotions/{promo['id']}/deactivate")
    before = t.processed().get("no_promotion", 0)
    eventually(lambda: t.visit(second, SHOP) or t.metrics().get("no_promotion", 0) > before or None,
               timeout=RELOAD_S, every=0.3)
    gone = t.processed()["no_promotion"]
    t.visit(third, SHOP)
    assert t.processed(no_promotion=gone + 1)
    assert third not in t.sends()


def test_replaced_and_reactivated_promotions_and_stores_reach_the_matcher(
    stack: Stack, database_url: str
) -> None:
    t = Tenant(stack, database_url)
    shop = t.store(SHOP)
    promo = t.post("/v1/promotions", store_id=shop, name="p", body="Old offer",
                   interests=["electronics"])
    t.enter_until_sent(t.recipient("early"), SHOP)

    replaced = t.api.put(f"/v1/promotions/{promo['id']}", json={
        "store_id": shop, "name": "p", "body": "New offer", "interests": ["electronics"]})
    assert replaced.status_code == 200, replaced.text
    assert t.api.get(f"/v1/promotions/{promo['id']}").json()["body"] == "New offer"
    late = t.recipient("late")
    eventually(lambda: t.visit(late, AWAY, SHOP) or [
        s for s in t.sends().get(late, []) if s.body == "New offer"], timeout=RELOAD_S, every=0.3)
    assert {s.body for s in t.sends()[late]} == {"New offer"}

    # The store's fence moves away from SHOP: a fresh visitor there gets nothing; moved back
    # and reactivated after a deactivation, the next visitor is matched again.
    store = {"name": "shop", "lat": AWAY[0], "lng": AWAY[1], "time_zone": "America/Chicago",
             "geofence": {"type": "circle", "radius_m": 100}}
    assert t.api.put(f"/v1/stores/{shop}", json=store).status_code == 200
    moved = t.recipient("moved")
    eventually(lambda: t.visit(moved, AWAY) or t.sends().get(moved), timeout=RELOAD_S, every=0.3)
    gone = t.processed().get("no_geofence", 0)
    left = t.recipient("left")
    t.visit(left, SHOP)
    t.processed(no_geofence=gone + 1)
    assert left not in t.sends()
    assert t.api.put(f"/v1/stores/{shop}", json={**store, "lat": SHOP[0], "lng": SHOP[1]}
                     ).status_code == 200
    t.post(f"/v1/promotions/{promo['id']}/deactivate")
    assert t.post(f"/v1/promotions/{promo['id']}/activate")["active"] is True
    t.enter_until_sent(t.recipient("back"), SHOP)
    other = httpx.Client(base_url=stack.api_url, headers={"X-API-Key": Tenant(stack, database_url)
                                                           .api.headers["X-API-Key"]})
    assert other.put(f"/v1/stores/{shop}", json=store).status_code == 404
    assert other.get(f"/v1/promotions/{promo['id']}").status_code == 404
    assert t.api.post(f"/v1/promotions/{promo['id']}/explode").status_code == 422


def test_cooldown_and_caps_survive_a_matcher_crash(stack: Stack, database_url: str) -> None:
    t = Tenant(stack, database_url)
    shop, other = t.store(SHOP), t.store(OTHER_SHOP)
    t.post("/v1/promotions", store_id=shop, name="a", body="A", cooldown_minutes=120)
    t.post("/v1/promotions", store_id=other, name="b", body="B")
    user = t.recipient("regular")
    t.enter_until_sent(user, SHOP)
    t.visit(user, AWAY, OTHER_SHOP)  # a second promotion the same local day: over the cap of 1
    assert t.processed(cap=1)["matched_total"] >= 1

    matcher = stack.children["matcher"]
    matcher.kill()
    matcher.spawn()
    t.posted = 0  # the new process counts from zero (a visit it reads again counts again)

    t.visit(user, AWAY, SHOP)  # a new stay at the first shop, within the cooldown
    t.visit(user, AWAY, OTHER_SHOP)
    t.processed(cooldown=1, cap=1)
    assert [s.body for s in t.sends()[user]][:1] == ["A"]
    assert len(_keys(t.sends()[user])) == 1  # nothing else was ever sent to them


def test_budget_stops_sends_and_a_suppressed_send_gives_it_back(stack: Stack, database_url: str) -> None:
    t = Tenant(stack, database_url)
    shop = t.store(SHOP)
    promo = t.post("/v1/promotions", store_id=shop, name="p", body="Only one", budget=1)
    u1, u2, u3, u4 = (t.recipient(n) for n in ("u1", "u2", "u3", "u4"))
    sent = t.enter_until_sent(u1, SHOP)
    t.visit(u2, SHOP)
    t.processed(budget=1)
    assert u2 not in t.sends()

    # The sender reports the first one suppressed (e.g. a STOP), twice: one slot comes back.
    event = DeliveryEvent(message_key=sent[0].message_key, tenant_id=t.id, lane=Lane.GEO,
                          state=MessageState.SUPPRESSED, reason="opted out",
                          promotion_id=promo["id"], user_id=u1, at=datetime.now(UTC))
    asyncio.run(_publish_delivery(stack.settings, [event, event]))
    t.processed(budget_released_total=1)
    t.visit(u3, SHOP)
    eventually(lambda: t.sends().get(u3), timeout=90)
    t.visit(u4, SHOP)
    counts = t.processed(budget=2)
    assert counts["budget_released_total"] == 1
    assert u4 not in t.sends()


async def _publish_delivery(settings: Settings, events: list[DeliveryEvent]) -> None:
    bus = Bus(settings)
    await bus.start()
    try:
        for event in events:  # one record each: a redelivered or repeated event
            await bus.publish_many("delivery", delivery_records([event]))
    finally:
        await bus.stop()

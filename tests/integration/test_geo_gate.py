"""The matcher's Redis gate against real Redis: cooldowns, caps, budgets, release, redelivery."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hexcast.core.cache import Keys, connect_redis
from hexcast.testing import REDIS_URL
from sender.models import DeliveryEvent, Lane, MessageState
from streams.gate import SendGate
from streams.matcher import MatchResult, MatchState
from streams.models import VisitEvent, VisitRecord
from targeting.geofence import CircleFence, cover_cells, fence_geometry
from targeting.models import CatalogRecord, ProfileRecord, PromotionEntry, StoreEntry

SHOP = (41.8827, -87.6233)
SHOP2 = (41.9000, -87.6233)


@pytest.fixture
async def gate() -> AsyncIterator[tuple[SendGate, Any]]:
    prefix = f"hxtest:gate:{uuid.uuid4().hex[:8]}:"
    client = connect_redis(REDIS_URL)
    yield SendGate(client, Keys(prefix), cap_per_day=2, cap_per_24h=3), client
    async for key in client.scan_iter(match=f"{prefix}*", count=10_000):
        await client.delete(key)
    await client.aclose()


def state(**policy: Any) -> MatchState:
    s = MatchState(resolution=10, ttl=timedelta(minutes=30))
    for sid, where in ((1, SHOP), (2, SHOP2)):
        geom = fence_geometry(CircleFence(type="circle", radius_m=80), lat=where[0], lng=where[1])
        s.apply_catalog(CatalogRecord(kind="store", id=sid, tenant_id=1, active=True, store=StoreEntry(
            lat=where[0], lng=where[1], time_zone="America/Chicago",
            geofence={"type": "circle", "radius_m": 80}, cells=cover_cells(geom, resolution=10))))
        s.apply_catalog(CatalogRecord(kind="promotion", id=sid * 10, tenant_id=1, active=True,
                                      promotion=PromotionEntry(store_id=sid, body=f"p{sid}", interests=[],
                                                               valid_from=None, valid_until=None,
                                                               **policy)))
    for user in ("u1", "u2", "u3", "u4"):
        s.apply_profile(ProfileRecord(tenant_id=1, user_id=user, phone="+13125550100", time_zone=None,
                                      interests=[], consent=True, opted_out=False))
    return s


def match(s: MatchState, user: str, eid: str, where: tuple[float, float], minutes: float = 0) -> MatchResult:
    ts = datetime.now(UTC) + timedelta(minutes=minutes)
    event = VisitEvent(event_id=eid, lat=where[0], lng=where[1], accuracy_m=5, ts=ts)
    return s.match(VisitRecord(tenant_id=1, user_id=user, events=[event], received_at=ts))


async def test_cooldown_suppresses_a_new_stay_but_a_redelivered_record_passes(gate: Any) -> None:
    g, _ = gate
    s = state(cooldown_minutes=60, max_gap_minutes=1)
    first = match(s, "u1", "e1", SHOP)
    assert [r.promotion_id for r in await g.decide(first)] == [10]
    assert first.counts["matched"] == 1
    # The same record again after a crash (presence lost, same trigger event): allowed again.
    assert [r.promotion_id for r in await g.decide(first)] == [10]
    later = match(s, "u1", "e2", SHOP, minutes=5)  # a new stay (gap > 1 min): cooldown
    assert await g.decide(later) == []
    assert later.counts["cooldown"] == 1


async def test_caps_per_local_day_count_each_message_once(gate: Any) -> None:
    g, _ = gate
    s = state(cooldown_minutes=0, max_gap_minutes=1)
    assert len(await g.decide(match(s, "u2", "a", SHOP))) == 1
    assert len(await g.decide(match(s, "u2", "b", SHOP2, 2))) == 1
    # A third promotion that day is over the cap of 2; the same message again is not.
    s.apply_catalog(CatalogRecord(kind="promotion", id=11, tenant_id=1, active=True, promotion=PromotionEntry(
        store_id=1, body="p11", interests=[], valid_from=None, valid_until=None, cooldown_minutes=0,
        max_gap_minutes=1)))
    third = match(s, "u2", "c", SHOP, 4)
    allowed = await g.decide(third)
    assert [r.promotion_id for r in allowed] == [10]  # already counted today: passes, 11 would not
    assert third.counts["max_per_visit"] == 1
    only11 = state(cooldown_minutes=0, max_gap_minutes=1)
    only11.apply_catalog(CatalogRecord(kind="promotion", id=10, tenant_id=1, active=False))
    p11 = PromotionEntry(store_id=1, body="p11", interests=[], valid_from=None, valid_until=None,
                         cooldown_minutes=0)
    only11.apply_catalog(CatalogRecord(kind="promotion", id=11, tenant_id=1, active=True, promotion=p11))
    capped = match(only11, "u2", "d", SHOP, 6)
    assert await g.decide(capped) == []
    assert capped.counts["cap"] == 1


async def test_budget_stops_sends_and_a_suppressed_send_gives_its_slot_back_once(gate: Any) -> None:
    g, _ = gate
    s = state(budget=1)
    first = await g.decide(match(s, "u1", "a", SHOP))
    assert len(first) == 1
    over = match(s, "u2", "b", SHOP)
    assert await g.decide(over) == []
    assert over.counts["budget"] == 1
    event = DeliveryEvent(message_key=first[0].message_key, tenant_id=1, lane=Lane.GEO,
                          state=MessageState.SUPPRESSED, reason="opted out", promotion_id=10,
                          at=datetime.now(UTC))
    assert len(await g.release([event])) == 1
    assert await g.release([event, event]) == []  # redelivered: idempotent
    assert len(await g.decide(match(s, "u3", "c", SHOP))) == 1
    last = match(s, "u4", "d", SHOP)
    assert await g.decide(last) == []
    assert last.counts["budget"] == 1
    accepted = event.model_copy(update={"state": MessageState.ACCEPTED, "message_key": "geo-x" * 3})
    assert await g.release([accepted]) == []

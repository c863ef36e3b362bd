"""A poison visit or event costs only itself: the archiver, the matcher (its state feed, its
visits and its budget releases) and the scheduler's campaigns.

Records are written by a plain Kafka producer for two tenants at once: next to ordinary ones,
a NUL in a user id, a lone surrogate as raw bytes in an event id or message key, a latitude of
1,000, a tenant that does not exist, a store in a time zone nobody knows. The ordinary ones
reach their effect; each poison one is in ``send.dlq`` (or, for state records and campaigns,
the log) with a reason naming it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hexcast.core.cache import Keys, connect_redis
from hexcast.core.settings import Settings
from hexcast.devstack.procs import hexcast_process
from hexcast.testing import eventually, make_tenant
from targeting.geofence import CircleFence, cover_cells, fence_geometry
from tests.integration.poisonkit import NUL, SURROGATE, encode, letters, produce, read_topic
from tests.integration.senderkit import sender_world

pytestmark = pytest.mark.e2e

SHOP_A = (41.8827, -87.6233)
SHOP_B = (42.0451, -87.6877)


def _event(event_id: str, where: tuple[float, float] = SHOP_A, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "lat": where[0], "lng": where[1], "accuracy_m": 10.0,
            "ts": datetime.now(UTC).isoformat(), **extra}


def _visits(tenant_id: int, user_id: str, *events: dict[str, Any]) -> tuple[str, bytes]:
    return f"{tenant_id}:{user_id}", encode({
        "v": 1, "tenant_id": tenant_id, "user_id": user_id, "events": list(events),
        "received_at": datetime.now(UTC).isoformat()})


async def _stored(dsn: str, tenants: tuple[int, int]) -> set[tuple[int, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tenant_id, event_id FROM visits WHERE tenant_id = ANY($1)",
                                list(tenants))
    finally:
        await conn.close()
    return {(r["tenant_id"], r["event_id"]) for r in rows}


async def test_the_archiver_stores_every_good_event(settings: Settings, tmp_path: Path) -> None:
    a, b = [(await make_tenant(settings.database_url, prefix=f"poison-{n}")).id for n in "ab"]
    await asyncio.to_thread(produce, settings, "visits", [
        _visits(a, f"u{NUL}x", _event("nul-user-1")),  # the user id belongs to every event
        _visits(a, "ua", _event("a-1"), _event(f"a-{SURROGATE}"), _event("a-2")),
        _visits(b, "ub", _event("b-1", lat=1000.0), _event("b-2")),
        _visits(b, "ub2", _event(f"b{NUL}3"), _event("b-4", SHOP_B)),
        _visits(2**40, "ghost", _event("ghost-1")),  # no such tenant: the statement refuses it
    ])
    child = hexcast_process("archiver", ["archiver"], env=settings.to_env(), log_dir=tmp_path)
    child.spawn()
    try:
        good = {(a, "a-1"), (a, "a-2"), (b, "b-2"), (b, "b-4")}
        await asyncio.to_thread(eventually, lambda: asyncio.run(
            _stored(settings.database_url, (a, b))) >= good or None, timeout=60)
        dead = await asyncio.to_thread(letters, settings, 5, source=settings.topic("visits"))
    finally:
        child.terminate()
    assert await _stored(settings.database_url, (a, b)) == good
    by_event = {d["record"]["events"][0]["event_id"]: d for d in dead}
    assert set(by_event) == {"nul-user-1", "a-\udced\udca0\udc80", "b-1", f"b{NUL}3", "ghost-1"}
    for event_id, what in (("nul-user-1", "NUL"), ("a-\udced\udca0\udc80", "lone surrogate"),
                           ("b-1", "lat"), (f"b{NUL}3", "NUL"), ("ghost-1", "foreign key")):
        assert what in by_event[event_id]["reason"], by_event[event_id]["reason"]
        assert len(by_event[event_id]["record"]["events"]) == 1  # that event alone


def _store(store_id: int, tenant_id: int, where: tuple[float, float], zone: str,
           resolution: int) -> tuple[str, bytes]:
    geom = fence_geometry(CircleFence(type="circle", radius_m=150), lat=where[0], lng=where[1])
    return f"store:{store_id}", json.dumps({
        "v": 1, "kind": "store", "id": store_id, "tenant_id": tenant_id, "active": True,
        "store": {"lat": where[0], "lng": where[1], "time_zone": zone,
                  "geofence": {"type": "circle", "radius_m": 150},
                  "cells": cover_cells(geom, resolution=resolution)}}).encode()


def _promotion(promotion_id: int, tenant_id: int, store_id: int) -> tuple[str, bytes]:
    return f"promotion:{promotion_id}", json.dumps({
        "v": 1, "kind": "promotion", "id": promotion_id, "tenant_id": tenant_id, "active": True,
        "promotion": {"store_id": store_id, "body": f"offer {promotion_id}", "interests": [],
                      "valid_from": None, "valid_until": None}}).encode()


def _profile(tenant_id: int, user_id: str, phone: str) -> tuple[str, bytes]:
    return f"{tenant_id}:{user_id}", json.dumps({
        "v": 1, "tenant_id": tenant_id, "user_id": user_id, "phone": phone, "time_zone": None,
        "interests": [], "consent": True, "opted_out": False}).encode()


def test_the_matcher_matches_every_good_visit(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path) as world:
        s, res = world.settings, world.settings.h3_resolution
        a, b = 71, 72  # the matcher needs no tenant rows
        produce(s, "catalog", [
            _store(1, a, SHOP_A, "Mars/Olympus_Mons", res),  # the feed must get past it
            _store(2, a, SHOP_A, "America/Chicago", res), _promotion(20, a, 2),
            _store(3, b, SHOP_B, "America/Chicago", res), _promotion(30, b, 3)])
        produce(s, "profiles", [_profile(a, "ua", "+13125550001"), _profile(b, "ub", "+13125550002"),
                                _profile(a, f"u{NUL}", "+13125550003")])
        produce(s, "visits", [
            _visits(a, "ua", _event(f"e-{SURROGATE}"), _event("e-a")),
            _visits(a, f"u{NUL}", _event("e-nul")),
            _visits(b, "ub", _event("e-far", lat=1000.0), _event("e-b", SHOP_B)),
        ])
        world.spawn("matcher", ["matcher"])

        def sent_to(found: list[tuple[bytes | None, bytes]]) -> set[tuple[int, str | None]]:
            return {(i["tenant_id"], i["user_id"]) for _, v in found
                    for i in json.loads(v)["items"]}

        found = read_topic(s, "send.geo", lambda f: {(a, "ua"), (b, "ub")} <= sent_to(f))
        assert sent_to(found) == {(a, "ua"), (b, "ub")}
        dead = letters(s, 3, source=s.topic("visits"))
        reasons = sorted(d["reason"] for d in dead)
        assert any("e-\\udced" in r and "lone surrogate" in r for r in reasons), reasons
        assert any("user_id" in r and "NUL" in r for r in reasons), reasons
        assert any("e-far" in r and "lat" in r for r in reasons), reasons


def test_budget_releases_go_on_past_a_poison_event(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path) as world:
        s = world.settings
        keys = Keys(s.redis_prefix)

        def event(key: str, tenant_id: int, promotion_id: int, **extra: Any) -> dict[str, Any]:
            return {"message_key": key, "tenant_id": tenant_id, "lane": "geo", "state": "failed",
                    "promotion_id": promotion_id, "at": datetime.now(UTC).isoformat(), **extra}

        async def budgets(*members: tuple[int, str]) -> set[tuple[int, str]]:
            """Which (promotion, key) still hold a slot; adds them first when given."""
            client = connect_redis(s.redis_url)
            try:
                for promotion, key in members:
                    await client.sadd(keys("geo", "budget", promotion), key)
                held = set()
                for promotion in (20, 30):
                    for member in await client.smembers(keys("geo", "budget", promotion)):
                        held.add((promotion, member.decode() if isinstance(member, bytes) else member))
                return held
            finally:
                await client.aclose()

        asyncio.run(budgets((20, "geo-a"), (20, "geo-a-kept"), (30, "geo-b")))
        produce(s, "delivery", [
            ("71", encode({"events": [event("geo-a", 71, 20), event(f"geo-{SURROGATE}", 71, 20)]})),
            ("72", encode({"events": [event("geo-b-nul", 72, 30, user_id=f"u{NUL}"),
                                      event("geo-b", 72, 30)]})),
        ])
        world.spawn("matcher", ["matcher"])
        eventually(lambda: asyncio.run(budgets()) == {(20, "geo-a-kept")} or None, timeout=60)
        dead = letters(s, 2, source=s.topic("delivery"))
        by_key = {d["record"]["events"][0]["message_key"]: d["reason"] for d in dead}
        assert set(by_key) == {"geo-\udced\udca0\udc80", "geo-b-nul"}
        assert "lone surrogate" in by_key["geo-\udced\udca0\udc80"]
        assert "NUL" in by_key["geo-b-nul"]


def test_the_scheduler_plans_every_campaign_it_can(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path, scheduler_poll_s=0.5) as world:
        a = world.tenant_id

        async def campaigns() -> dict[str, int]:
            conn = await asyncpg.connect(world.settings.database_url)
            try:
                b = (await make_tenant(conn, prefix="poison-b")).id
                due = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=5)
                made = {}
                for name, tenant, segment, zone in (
                    ("empty-segment", a, {"everyone": False}, "UTC"),
                    ("unknown-zone", b, {"everyone": True}, "Mars/Olympus_Mons"),
                    ("good-a", a, {"everyone": True}, "UTC"),
                    ("good-b", b, {"everyone": True}, "UTC"),
                ):
                    made[name] = await conn.fetchval(
                        "INSERT INTO campaigns (tenant_id, name, body, segment, run_at, time_zone,"
                        " time_mode) VALUES ($1, $2, 'hello', $3::jsonb, $4, $5, 'fixed')"
                        " RETURNING id", tenant, name, json.dumps(segment), due, zone)
                return made
            finally:
                await conn.close()

        made = asyncio.run(campaigns())
        scheduler = world.spawn("scheduler", ["scheduler"])
        runs = "SELECT array_agg(campaign_id ORDER BY campaign_id) FROM campaign_runs"
        eventually(lambda: world.scalar(runs) == [made["good-a"], made["good-b"]] or None,
                   timeout=60)
        log = world.log(scheduler)
        for name in ("empty-segment", "unknown-zone"):
            assert f'"campaign_id": {made[name]}' in log or f"campaign_id={made[name]}" in log

"""Segment SQL against PostgreSQL: interests, zones, geography, recency, exclusion, holdout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import h3
import pytest
from pydantic import ValidationError

from hexcast.testing import make_recipient, make_store, make_tenant
from targeting.segments import (
    MAX_USER_IDS,
    SegmentDefinition,
    audience_query,
    cell_ancestors,
    is_holdout,
    zone_counts_query,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
LOOP = (41.8827, -87.6233)  # Chicago Loop
EVANSTON = (42.0451, -87.6877)  # ~19 km north
PEOPLE = [
    # user, interests, zone, (lat, lng) or None, days since last visit or None, consent, opted out
    ("phones", ["electronics/phones"], "America/Chicago", LOOP, 2, True, False),
    ("garden", ["garden"], None, EVANSTON, 40, True, False),
    ("both", ["electronics", "garden/tools"], "Asia/Kolkata", None, None, True, False),
    ("noconsent", ["electronics"], "America/Chicago", LOOP, 1, False, False),
    ("stopped", ["electronics"], "America/Chicago", LOOP, 1, True, True),
    ("electronic_x", ["electronicsx"], "America/Chicago", None, None, True, False),
]


@pytest.fixture
async def world(database_url: str) -> Any:
    conn = await asyncpg.connect(database_url)
    tenant = (await make_tenant(conn, prefix="seg")).id
    store = await make_store(conn, tenant_id=tenant, name="Loop", lat=LOOP[0], lng=LOOP[1])
    for n, (user, interests, zone, where, days, consent, stopped) in enumerate(PEOPLE):
        await make_recipient(
            conn, tenant_id=tenant, user_id=user, phone=f"+1312555{n:04d}", time_zone=zone,
            interests=interests, consent_at=NOW if consent else None,
            opted_out_at=NOW if stopped else None, lat=where[0] if where else None,
            lng=where[1] if where else None, h3_cells=cell_ancestors(*where, 10) if where else [],
            last_visit_at=NOW - timedelta(days=days) if days else None)
    # an archived visit (the archiver's table) counts for recency too: "both" visited 3 days ago
    await conn.execute(
        "INSERT INTO visits (tenant_id, event_id, user_id, lat, lng, accuracy_m, cell, ts, received_at)"
        " VALUES ($1, 'e1', 'both', 0, 0, 10, '89283082803ffff', $2, $2)", tenant, NOW - timedelta(days=3))
    yield conn, tenant, store
    await conn.execute("DELETE FROM tenants WHERE id = $1", tenant)
    await conn.close()


async def _users(conn: asyncpg.Connection, tenant: int, segment: dict[str, Any],
                 zone: str | None = None) -> list[str]:
    sql, args = audience_query(
        SegmentDefinition.model_validate(segment), tenant_id=tenant, campaign_id=1,
        fallback_zone="America/Chicago", as_of=NOW, resolution=10, zone=zone, after_id=0, limit=1000)
    return sorted(r["user_id"] for r in await conn.fetch(sql, *args))


async def test_segment_filters(world: Any) -> None:
    conn, tenant, store = world
    everyone = ["both", "electronic_x", "garden", "phones"]  # consent, not opted out
    assert await _users(conn, tenant, {"everyone": True}) == everyone
    assert await _users(conn, tenant, {"interests_any": ["electronics"]}) == ["both", "phones"]
    assert await _users(conn, tenant, {"interests_all": ["electronics", "garden"]}) == ["both"]
    assert await _users(conn, tenant, {"time_zones": ["America/Chicago"]}) == [
        "electronic_x", "garden", "phones"]  # garden has no zone: the campaign's
    assert await _users(conn, tenant, {"everyone": True}, zone="Asia/Kolkata") == ["both"]
    assert await _users(conn, tenant, {"near_stores": {"store_ids": [store], "radius_km": 5}}) == ["phones"]
    assert await _users(conn, tenant, {"near_stores": {"store_ids": [store], "radius_km": 25}}) == [
        "garden", "phones"]
    coarse = h3.cell_to_parent(h3.latlng_to_cell(*LOOP, 10), 6)
    assert await _users(conn, tenant, {"h3_cells": [coarse]}) == ["phones"]
    box = {"type": "Polygon", "coordinates": [[[-87.70, 42.00], [-87.66, 42.00], [-87.66, 42.08],
                                                [-87.70, 42.08], [-87.70, 42.00]]]}
    assert await _users(conn, tenant, {"polygon": box}) == ["garden"]
    assert await _users(conn, tenant, {"visited_within_days": 30}) == ["both", "phones"]
    assert await _users(conn, tenant, {"not_visited_within_days": 30}) == ["electronic_x", "garden"]
    assert await _users(conn, tenant, {"everyone": True, "exclude": {"interests_any": ["garden"]}}) == [
        "electronic_x", "phones"]
    assert await _users(conn, tenant, {"everyone": True, "require_consent": False}) == [
        "both", "electronic_x", "garden", "noconsent", "phones"]


async def test_holdout_is_deterministic_and_matches_python(world: Any) -> None:
    conn, tenant, _ = world
    segment = SegmentDefinition(everyone=True, holdout_pct=50)
    for campaign_id in range(1, 6):
        sql, args = audience_query(segment, tenant_id=tenant, campaign_id=campaign_id,
                                   fallback_zone="UTC", as_of=NOW, resolution=10, zone=None,
                                   after_id=0, limit=1000)
        rows = await conn.fetch(sql, *args)
        for r in rows:
            assert r["holdout"] == is_holdout(campaign_id=campaign_id, recipient_id=r["id"], pct=50)
        sql, args = zone_counts_query(segment, tenant_id=tenant, campaign_id=campaign_id,
                                      fallback_zone="UTC", as_of=NOW, resolution=10)
        counts = await conn.fetch(sql, *args)
        assert sum(c["holdout"] for c in counts) == sum(r["holdout"] for r in rows)
        assert sum(c["audience"] for c in counts) == len(rows) == 4


async def test_user_id_segments_select_exactly_those_reachable_recipients(world: Any) -> None:
    conn, tenant, _ = world
    listed = ["phones", "noconsent", "stopped", "ghost", "garden"]
    assert await _users(conn, tenant, {"user_ids": listed}) == ["garden", "phones"]  # consent, STOP apply
    assert await _users(conn, tenant, {"user_ids": listed, "interests_any": ["electronics"]}) == ["phones"]
    assert await _users(conn, tenant, {"everyone": True, "exclude": {"user_ids": ["both", "ghost"]}}) == [
        "electronic_x", "garden", "phones"]
    assert await _users(conn, tenant, {"user_ids": ["ghost"]}) == []
    sql, args = zone_counts_query(SegmentDefinition(user_ids=listed), tenant_id=tenant, campaign_id=1,
                                  fallback_zone="America/Chicago", as_of=NOW, resolution=10)
    assert sum(r["audience"] for r in await conn.fetch(sql, *args)) == 2


def test_user_id_lists_are_bounded_and_validated() -> None:
    assert len(SegmentDefinition(user_ids=[f"u{i}" for i in range(MAX_USER_IDS)]).user_ids) == MAX_USER_IDS
    for bad in ([f"u{i}" for i in range(MAX_USER_IDS + 1)], [""], ["x" * 129]):
        with pytest.raises(ValidationError, match="user_ids"):
            SegmentDefinition.model_validate({"user_ids": bad})


def test_empty_and_bad_segments_are_refused() -> None:
    for bad in ({}, {"exclude": {"interests_any": ["x"]}}, {"h3_cells": ["zzz"]},
                {"time_zones": ["Nowhere/Town"]}, {"interests_any": ["Bad Interest"]},
                {"everyone": True, "holdout_pct": 51}, {"everyone": True, "unknown": 1}):
        with pytest.raises(ValidationError):
            SegmentDefinition.model_validate(bad)

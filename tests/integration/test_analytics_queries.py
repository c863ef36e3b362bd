"""The read queries the notebooks use, against a loaded synthetic dataset in a throwaway database."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from analysis import queries
from hexcast.core.db import Conn, connect_pool
from hexcast.core.errors import NotFound
from hexcast.core.tenants import find_tenant
from hexcast.synth import DEMO_TENANT, SynthData, SynthParams, SynthSummary, generate, load, recipient_ids
from hexcast.testing import create_database, drop_database, dsn, make_tenant
from sender import queries as sender_queries
from targeting.segments import SegmentDefinition

UNTIL = datetime(2026, 11, 1, tzinfo=UTC)
EARLY, LATE = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture
async def loaded() -> AsyncIterator[tuple[Conn, SynthData, SynthSummary]]:
    name = await create_database()
    pool = await connect_pool(dsn(name), max_size=1)
    try:
        async with pool.acquire() as conn:
            data = generate(SynthParams(recipients=200, stores=6, seed=4,
                                        until=UNTIL))
            yield conn, data, await load(conn, data, resolution=10)
    finally:
        await pool.close()
        await drop_database(name)


async def test_visit_queries(loaded: tuple[Conn, SynthData, SynthSummary]) -> None:
    conn, data, summary = loaded
    tid = summary.tenant_id
    assert (await find_tenant(conn, name=DEMO_TENANT)).id == tid
    with pytest.raises(NotFound):
        await find_tenant(conn, name="no such tenant")
    total = len(data.visits) + summary.counts["campaign_visits"]  # + the campaign's effect
    assert await queries.visit_count(conn, tenant_id=tid) == total == summary.counts["visits"]
    cells = await queries.visit_cell_counts(conn, tenant_id=tid)
    assert sum(cells.values()) == total
    assert all(cells[c] >= n for c, n in Counter(v.cell for v in data.visits).items())
    points = await queries.visit_points(conn, tenant_id=tid)
    assert len(points) == total
    assert {(v.user_id, v.lat, v.lng) for v in data.visits} <= set(points)
    everything = await queries.visits_between(conn, tenant_id=tid, since=EARLY, until=LATE)
    assert {(u, lat, lng) for u, lat, lng, _ in everything} == set(points)
    assert {(v.user_id, v.lat, v.lng, v.ts) for v in data.visits} <= set(everything)
    since, until = UNTIL - timedelta(days=6), UNTIL - timedelta(days=2)
    window = await queries.visits_between(conn, tenant_id=tid, since=since, until=until)
    assert sorted(window) == sorted(v for v in everything if since <= v[3] < until)
    assert 0 < len(window) < total
    other = await make_tenant(conn, name="someone else")
    assert await queries.visit_count(conn, tenant_id=other.id) == 0
    assert await queries.geo_outcomes_by_promotion(conn, tenant_id=other.id) == {}


async def test_outcomes_and_human_clicks_per_promotion(
    loaded: tuple[Conn, SynthData, SynthSummary],
) -> None:
    conn, _, summary = loaded
    tid = summary.tenant_id
    outcomes = await queries.geo_outcomes_by_promotion(conn, tenant_id=tid)
    geo = summary.counts["messages"] - summary.counts["campaign_messages"]
    assert sum(sum(s.values()) for s in outcomes.values()) == geo
    states = await sender_queries.state_counts(conn, tenant_id=tid)
    [run_id] = await conn.fetch("SELECT id FROM campaign_runs WHERE tenant_id = $1", tid)
    bulk = await queries.run_outcomes(conn, tenant_id=tid, run_id=run_id["id"])
    bulk_delivered = sum(o.state == "delivered" for o in bulk)
    assert sum(s.get("delivered", 0) for s in outcomes.values()) == states["delivered"] - bulk_delivered

    msgs = await conn.fetch("SELECT id, message_key, promotion_id FROM messages WHERE tenant_id = $1"
                            " AND lane = 'geo' AND state = 'delivered' ORDER BY id LIMIT 3", tid)
    before = await queries.click_counts_by_promotion(conn, tenant_id=tid)
    expected = Counter(before) + Counter(m["promotion_id"] for m in msgs[:2])
    await conn.executemany(
        "INSERT INTO short_links (code, tenant_id, message_key, url) VALUES ($1, $2, $3, 'https://x.test')",
        [(f"zz{i}", tid, m["message_key"]) for i, m in enumerate(msgs)])
    await conn.executemany("INSERT INTO link_clicks (code, bot) VALUES ($1, $2)",
                           [("zz0", False), ("zz0", False), ("zz1", False), ("zz2", True)])
    assert await queries.click_counts_by_promotion(conn, tenant_id=tid) == dict(expected)
    other = await make_tenant(conn, name="someone else")
    assert await queries.click_counts_by_promotion(conn, tenant_id=other.id) == {}




async def test_notebook_reads_of_recipients_and_the_finished_run(
    loaded: tuple[Conn, SynthData, SynthSummary],
) -> None:
    conn, data, summary = loaded
    tid = summary.tenant_id
    ids = await recipient_ids(conn, tenant_id=tid)
    assert set(ids) == {r.user_id for r in data.recipients}
    [run] = await conn.fetch("SELECT id, first_fire_at FROM campaign_runs WHERE tenant_id = $1", tid)
    outcomes = await queries.run_outcomes(conn, tenant_id=tid, run_id=run["id"])
    stopped = {o.user_id for o in outcomes if o.opted_out}
    assert len(outcomes) == summary.counts["campaign_messages"]
    assert len(stopped) == summary.counts["opt_outs"] > 0
    control = await queries.run_holdout_users(conn, tenant_id=tid, run_id=run["id"])
    assert len(control) == summary.counts["holdout"]
    assert await queries.run_holdout_users(conn, tenant_id=tid + 1, run_id=run["id"]) == []
    # reachable at the send: the run's audience; reachable now: minus the campaign's STOPs
    before = await queries.reachable_behaviour(conn, tenant_id=tid, as_of=run["first_fire_at"])
    now = await queries.reachable_behaviour(conn, tenant_id=tid, as_of=LATE)
    assert {r["user_id"] for r in before} == {o.user_id for o in outcomes} | set(control)
    assert {r["user_id"] for r in before} - {r["user_id"] for r in now} == stopped
    by_user = {r["user_id"]: r for r in now}
    for person in data.recipients[:50]:
        if person.user_id not in by_user:
            continue
        mine = [v for v in data.visits if v.user_id == person.user_id]
        row = by_user[person.user_id]
        assert row["visits"] >= len(mine)  # the campaign may have added one
        assert list(row["interests"]) == person.interests
        assert (row["days_since_last"] is None) == (row["visits"] == 0)
    segment = SegmentDefinition(user_ids=sorted(by_user)[:7])
    assert await queries.segment_user_ids(
        conn, segment=segment, tenant_id=tid, fallback_zone="UTC", as_of=LATE, resolution=10,
        page=3) == sorted(by_user)[:7]

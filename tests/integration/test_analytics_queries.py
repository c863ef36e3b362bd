"""The read queries the notebooks use, against a loaded synthetic dataset in a throwaway database."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from hexcast.db import Conn, connect_pool
from hexcast.errors import NotFound
from hexcast.synth import DEMO_TENANT, SynthData, SynthParams, generate
from hexcast.synth_load import SynthSummary, load
from hexcast.tenants import create_tenant, find_tenant
from sender import repo as sender_repo
from streams import repo as streams_repo
from tests.pg import create_database, drop_database, dsn


@pytest.fixture
async def loaded() -> AsyncIterator[tuple[Conn, SynthData, SynthSummary]]:
    name = await create_database()
    pool = await connect_pool(dsn(name), max_size=1)
    try:
        async with pool.acquire() as conn:
            data = generate(SynthParams(recipients=200, stores=6, seed=4,
                                        until=datetime(2026, 11, 1, tzinfo=UTC)))
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
    assert await streams_repo.visit_count(conn, tenant_id=tid) == len(data.visits)
    cells = dict(Counter(v.cell for v in data.visits))
    assert await streams_repo.visit_cell_counts(conn, tenant_id=tid) == cells
    ordered = sorted(data.visits, key=lambda v: (v.ts, v.event_id))
    points = [(v.user_id, v.lat, v.lng) for v in ordered]
    assert await streams_repo.visit_points(conn, tenant_id=tid) == points
    other, _ = await create_tenant(conn, name="someone else")
    assert await streams_repo.visit_count(conn, tenant_id=other.id) == 0
    assert await sender_repo.geo_outcomes_by_promotion(conn, tenant_id=other.id) == {}


async def test_outcomes_and_clicks_whichever_way_clicks_are_keyed(
    loaded: tuple[Conn, SynthData, SynthSummary],
) -> None:
    conn, _, summary = loaded
    tid = summary.tenant_id
    outcomes = await sender_repo.geo_outcomes_by_promotion(conn, tenant_id=tid)
    assert sum(sum(s.values()) for s in outcomes.values()) == summary.counts["messages"]
    states = await sender_repo.state_counts(conn, tenant_id=tid)
    assert sum(s.get("delivered", 0) for s in outcomes.values()) == states["delivered"]

    await conn.execute("DROP TABLE IF EXISTS clicks CASCADE")  # a later migration may add it
    assert await sender_repo.click_counts_by_promotion(conn, tenant_id=tid) is None

    msgs = await conn.fetch("SELECT id, message_key, promotion_id FROM messages WHERE tenant_id = $1"
                            " AND state = 'delivered' ORDER BY id LIMIT 3", tid)
    expected = dict(Counter(m["promotion_id"] for m in msgs[:2]))
    await conn.execute("CREATE TABLE clicks (message_id bigint, at timestamptz DEFAULT now())")
    await conn.executemany("INSERT INTO clicks (message_id) VALUES ($1)",
                           [(msgs[0]["id"],), (msgs[0]["id"],), (msgs[1]["id"],)])
    assert await sender_repo.click_counts_by_promotion(conn, tenant_id=tid) == expected

    await conn.execute("DROP TABLE clicks")
    await conn.execute("CREATE TABLE clicks (message_key text)")
    await conn.executemany("INSERT INTO clicks (message_key) VALUES ($1)",
                           [(msgs[0]["message_key"],), (msgs[1]["message_key"],)])
    assert await sender_repo.click_counts_by_promotion(conn, tenant_id=tid) == expected
    other, _ = await create_tenant(conn, name="someone else")
    assert await sender_repo.click_counts_by_promotion(conn, tenant_id=other.id) == {}



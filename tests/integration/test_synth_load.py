"""`hexcast demo-data` migrates a database and bulk-loads the synthetic dataset, replaceably."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import UTC, datetime

import asyncpg

from analysis import queries
from hexcast.core.db import Conn, connect_pool
from hexcast.core.tenants import authenticate
from hexcast.synth import DEMO_TENANT, SynthParams, generate, load, recipient_ids
from hexcast.testing import create_database, drop_database, dsn
from scheduler import repo as scheduler_repo
from sender.keys import bulk_key
from targeting.segments import SegmentDefinition, is_holdout

UNTIL = datetime(2026, 11, 1, tzinfo=UTC)


async def _counts(conn: Conn, tenant_id: int) -> dict[str, int]:
    out = {}
    for table in ("stores", "promotions", "recipients", "visits", "messages", "opt_outs"):
        out[table] = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id)
    out["campaign_messages"] = await conn.fetchval(
        "SELECT count(*) FROM messages WHERE tenant_id = $1 AND lane = 'bulk'", tenant_id)
    out["holdout"] = await conn.fetchval(
        "SELECT count(*) FROM campaign_holdouts h JOIN campaign_runs r ON r.id = h.run_id"
        " WHERE r.tenant_id = $1", tenant_id)
    out["link_clicks"] = await conn.fetchval(
        "SELECT count(*) FROM link_clicks c JOIN short_links s ON s.code = c.code WHERE s.tenant_id = $1",
        tenant_id)
    return out


def _table_counts(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k != "campaign_visits"}


async def test_load_matches_the_generated_data_and_replaces_itself(database_url: str) -> None:
    data = generate(SynthParams(recipients=300, stores=12, seed=5, until=UNTIL))
    pool = await connect_pool(database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            first = await load(conn, data, resolution=10)
            assert await _counts(conn, first.tenant_id) == _table_counts(first.counts)
            assert first.counts["visits"] == len(data.visits) + first.counts["campaign_visits"]
            assert len(data.visits) == 3000
            assert first.counts["campaign_visits"] > 0
            assert first.counts["messages"] > first.counts["campaign_messages"] > 0
            assert (await authenticate(conn, key=first.api_key)).id == first.tenant_id
            # every geo message belongs to a promotion of this tenant and a consenting recipient
            # who had not opted out (campaign STOPs come later than their earlier geo messages)
            orphans = await conn.fetchval(
                "SELECT count(*) FROM messages m LEFT JOIN promotions p ON p.id = m.promotion_id"
                " AND p.tenant_id = m.tenant_id LEFT JOIN recipients r ON r.tenant_id = m.tenant_id"
                " AND r.user_id = m.user_id WHERE m.tenant_id = $1 AND m.lane = 'geo' AND (p.id IS NULL"
                " OR r.consent_at IS NULL OR r.opted_out_at <= m.created_at)", first.tenant_id)
            assert orphans == 0
            stored = await conn.fetch("SELECT event_id, cell, ts FROM visits WHERE tenant_id = $1",
                                      first.tenant_id)
            expected = {v.event_id: (v.cell, v.ts) for v in data.visits}
            got = {r["event_id"]: (r["cell"], r["ts"]) for r in stored}
            assert {k: v for k, v in got.items() if k in expected} == expected
            assert len(got) - len(expected) == first.counts["campaign_visits"]

            second = await load(conn, data, resolution=10)
            assert second.tenant_id != first.tenant_id
            # the control group hangs on the new campaign and recipient ids; the audience does not
            base = ("stores", "promotions", "recipients")
            assert [second.counts[k] for k in base] == [first.counts[k] for k in base]
            assert (second.counts["campaign_messages"] + second.counts["holdout"]
                    == first.counts["campaign_messages"] + first.counts["holdout"])
            assert await _counts(conn, first.tenant_id) == dict.fromkeys(_table_counts(first.counts), 0)
            assert await conn.fetchval("SELECT count(*) FROM tenants WHERE name = $1", DEMO_TENANT) == 1
    finally:
        await pool.close()


def test_cli_migrates_an_empty_database_and_loads(tmp_path: object) -> None:
    name = asyncio.run(create_database(migrate=False))
    try:
        env = {**os.environ, "HEXCAST_DATABASE_URL": dsn(name), "HEXCAST_LOG_LEVEL": "warning"}
        done = subprocess.run(
            [sys.executable, "-m", "hexcast", "demo-data", "--recipients", "200", "--seed", "9"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "recipients: 200" in done.stdout
        extra = re.search(r"campaign_visits: (\d+)", done.stdout)
        assert extra is not None, done.stdout
        assert f"visits: {2000 + int(extra.group(1))}," in done.stdout

        bad = subprocess.run(
            [sys.executable, "-m", "hexcast", "demo-data", "--recipients", "3"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )
        assert bad.returncode != 0
        assert "--recipients" in bad.stderr

        async def check() -> int:
            conn = await asyncpg.connect(dsn(name))
            try:
                return int(await conn.fetchval(
                    "SELECT count(*) FROM recipients r JOIN tenants t ON t.id = r.tenant_id"
                    " WHERE t.name = $1", DEMO_TENANT))
            finally:
                await conn.close()

        assert asyncio.run(check()) == 200
    finally:
        asyncio.run(drop_database(name))


async def test_load_writes_a_finished_campaign_as_the_scheduler_would(database_url: str) -> None:
    data = generate(SynthParams(recipients=400, stores=9, seed=3, until=UNTIL))
    pool = await connect_pool(database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            summary = await load(conn, data, resolution=10)
            await _check_campaign(conn, summary.tenant_id)
    finally:
        await pool.close()


async def _check_campaign(conn: Conn, tenant_id: int) -> None:
    [campaign] = await scheduler_repo.list_campaigns(conn, tenant_id=tenant_id, after_id=0, limit=10)
    [run] = await scheduler_repo.list_runs(conn, campaign_id=campaign["id"])
    [wave] = await scheduler_repo.waves_of(conn, run_ids=[run["id"]])
    assert run["released_at"] is not None
    assert wave["state"] == "done"
    outcomes = await queries.run_outcomes(conn, tenant_id=tenant_id, run_id=run["id"])
    control = await queries.run_holdout_users(conn, tenant_id=tenant_id, run_id=run["id"])
    assert (wave["released"], wave["held_out"]) == (len(outcomes), len(control))
    # the audience the segment SQL selects now, plus those who replied STOP to this campaign
    segment = SegmentDefinition.model_validate(campaign["segment"])
    now = await queries.segment_user_ids(
        conn, segment=segment, tenant_id=tenant_id, fallback_zone=campaign["time_zone"],
        as_of=UNTIL, resolution=10)
    stopped = {o.user_id for o in outcomes if o.opted_out}
    messaged = {o.user_id for o in outcomes}
    assert stopped
    assert set(now) | stopped == messaged | set(control)
    assert not messaged & set(control)
    ids = await recipient_ids(conn, tenant_id=tenant_id)
    held = {u for u in messaged | set(control)
            if is_holdout(campaign_id=campaign["id"], recipient_id=ids[u], pct=segment.holdout_pct)}
    assert held == set(control)
    keys = {r["message_key"]: r["user_id"] for r in await conn.fetch(
        "SELECT message_key, user_id FROM messages WHERE campaign_run_id = $1", run["id"])}
    assert keys == {bulk_key(campaign_run_id=run["id"], recipient_id=ids[u]): u for u in messaged}
    assert all(o.state == "delivered" for o in outcomes if o.clicked or o.opted_out)
    assert any(o.clicked for o in outcomes)
    # every click is on a link of a message of this run; every STOP is on the opt-out list
    strays = await conn.fetchval(
        "SELECT count(*) FROM link_clicks c JOIN short_links s ON s.code = c.code"
        " LEFT JOIN messages m ON m.message_key = s.message_key WHERE s.tenant_id = $1"
        " AND (m.campaign_run_id IS DISTINCT FROM $2 OR c.at < m.delivered_at)", tenant_id, run["id"])
    assert strays == 0
    opted = await conn.fetchval("SELECT count(*) FROM recipients WHERE tenant_id = $1 AND opted_out_at > $2",
                                tenant_id, run["first_fire_at"])
    assert opted == len(stopped)

"""`hexcast demo-data` migrates a database and bulk-loads the synthetic dataset, replaceably."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime

import asyncpg

from hexcast.db import Conn, connect_pool
from hexcast.synth import DEMO_TENANT, SynthParams, generate, load
from hexcast.tenants import authenticate
from tests.pg import create_database, drop_database, dsn

UNTIL = datetime(2026, 11, 1, tzinfo=UTC)


async def _counts(conn: Conn, tenant_id: int) -> dict[str, int]:
    out = {}
    for table in ("stores", "promotions", "recipients", "visits", "messages"):
        out[table] = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id)
    return out


async def test_load_matches_the_generated_data_and_replaces_itself(database_url: str) -> None:
    data = generate(SynthParams(recipients=300, stores=12, seed=5, until=UNTIL))
    pool = await connect_pool(database_url, max_size=1)
    try:
        conn = await pool.acquire()
        first = await load(conn, data, resolution=10)
        assert await _counts(conn, first.tenant_id) == first.counts
        assert first.counts["visits"] == len(data.visits) == 3000
        assert first.counts["messages"] > 0
        assert (await authenticate(conn, key=first.api_key)).id == first.tenant_id
        # every geo message belongs to a promotion of this tenant and a consenting recipient
        orphans = await conn.fetchval(
            "SELECT count(*) FROM messages m LEFT JOIN promotions p ON p.id = m.promotion_id"
            " AND p.tenant_id = m.tenant_id LEFT JOIN recipients r ON r.tenant_id = m.tenant_id"
            " AND r.user_id = m.user_id WHERE m.tenant_id = $1 AND (p.id IS NULL OR r.consent_at IS NULL"
            " OR r.opted_out_at IS NOT NULL OR m.lane <> 'geo')", first.tenant_id)
        assert orphans == 0
        stored = await conn.fetch("SELECT event_id, cell, ts FROM visits WHERE tenant_id = $1",
                                  first.tenant_id)
        expected = {v.event_id: (v.cell, v.ts) for v in data.visits}
        assert {r["event_id"]: (r["cell"], r["ts"]) for r in stored} == expected

        second = await load(conn, data, resolution=10)
        assert second.tenant_id != first.tenant_id
        assert second.counts == first.counts
        assert await _counts(conn, first.tenant_id) == dict.fromkeys(first.counts, 0)
        assert await conn.fetchval("SELECT count(*) FROM tenants WHERE name = $1", DEMO_TENANT) == 1
        await pool.release(conn)
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
        assert "visits: 2000" in done.stdout

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

"""Run lifecycle against PostgreSQL: messages moved by the sender's own state SQL, the
scheduler's lifecycle step (``scheduler.lifecycle.Lifecycle``) deciding.

A run is finished (or finished_with_expired) once every message has its outcome, with its
counts on the row and ``campaign.finished`` written once; a message accepted without a receipt
holds the run until the receipt wait has passed; a paused run is left alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from hexcast.core.db import Conn, connect_pool
from hexcast.testing import TenantRef, make_settings, make_tenant
from scheduler.lifecycle import Lifecycle, snapshots
from sender import repo
from sender.models import MessageState
from tests.integration.webhookkit import add_endpoint


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


def _lifecycle(database_url: str, pool: asyncpg.Pool, receipt_wait_s: float) -> Lifecycle:
    settings = make_settings("kafka://127.0.0.1:9", database_url,
                             campaign_receipt_wait_s=receipt_wait_s)
    return Lifecycle(settings, pool)


async def _released_run(conn: Conn, tenant: TenantRef, n: int, *, prefix: str) -> tuple[int, list[int]]:
    """A run whose one wave released ``n`` recipients, and their messages, claimed
    (``sending``): (run id, message ids)."""
    campaign = await conn.fetchval(
        "INSERT INTO campaigns (tenant_id, name, body, segment, run_at, time_zone, time_mode)"
        " VALUES ($1, 'c', 'hi', '{}', now(), 'UTC', 'fixed') RETURNING id", tenant.id)
    run = await conn.fetchval(
        "INSERT INTO campaign_runs (campaign_id, tenant_id, scheduled_for, first_fire_at)"
        " VALUES ($1, $2, now(), now()) RETURNING id", campaign, tenant.id)
    await conn.execute(
        "INSERT INTO campaign_waves (run_id, fire_at, state, released, started_at, finished_at)"
        " VALUES ($1, now(), 'done', $2, now(), now())", run, n)
    await conn.execute("UPDATE campaign_runs SET released_at = now() WHERE id = $1", run)
    ids = [r["id"] for r in await conn.fetch(
        "INSERT INTO messages (message_key, client_ref, tenant_id, lane, phone, body, campaign_run_id)"
        " SELECT $2 || i, $2 || i, $1, 'bulk', '+1312555' || lpad(i::text, 4, '0'), 'hi', $3"
        " FROM generate_series(1, $4) AS i RETURNING id", tenant.id, prefix, run, n)]
    await repo.transition(conn, ids=ids, to=MessageState.SENDING, from_states=[MessageState.QUEUED],
                          reason=None, actor="test", attempts=1)
    return run, ids


async def _accept(conn: Conn, ids: list[int]) -> None:
    await repo.mark_accepted(conn, accepted=[(i, f"p-{i}") for i in ids], actor="test")


async def _receipts(conn: Conn, ids: list[int], status: str) -> None:
    keys = await conn.fetch("SELECT message_key FROM messages WHERE id = ANY($1::bigint[])", ids)
    await repo.apply_receipts(conn, receipts=[(r["message_key"], status, None) for r in keys],
                              actor="test")


async def _run(conn: Conn, run_id: int) -> Any:
    return await conn.fetchrow("SELECT state, finished_at, counts FROM campaign_runs WHERE id = $1",
                               run_id)


async def _finished_events(conn: Conn, tenant: TenantRef) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT payload FROM webhook_outbox WHERE tenant_id = $1"
                            " AND type = 'campaign.finished' ORDER BY id", tenant.id)
    return [r["payload"]["data"] for r in rows]


async def test_a_run_finishes_once_every_message_has_its_outcome(
    database_url: str, pool: asyncpg.Pool,
) -> None:
    lifecycle = _lifecycle(database_url, pool, receipt_wait_s=3600)
    async with pool.acquire() as conn:
        tenant = await make_tenant(conn, prefix="life")
        await add_endpoint(conn, tenant_id=tenant.id, url="http://127.0.0.1:9/",
                           types=["campaign.finished"])
        run, ids = await _released_run(conn, tenant, 10, prefix=f"life{tenant.id}-")
        await _accept(conn, ids[:9])
        await lifecycle.step()
        assert (await _run(conn, run))["finished_at"] is None  # one still with the sender
        [snap] = await snapshots(conn, quiet_hours_on=False, run_ids=[run])
        assert (snap.tally.settled, snap.tally.final) == (9, 0)
        await repo.transition(conn, ids=ids[9:], to=MessageState.FAILED,
                              from_states=[MessageState.SENDING], reason="unroutable", actor="test")
        await _receipts(conn, ids[:8], "delivered")
        await _receipts(conn, ids[8:9], "failed")
        await lifecycle.step()
        await lifecycle.step()
        row = await _run(conn, run)
        assert (row["state"], row["counts"]) == ("finished", {"delivered": 8, "failed": 2})
        assert row["finished_at"] is not None
        [event] = await _finished_events(conn, tenant)  # once, though looked at twice
        assert {k: event[k] for k in ("campaign_run_id", "state", "counts", "released",
                                      "held_out", "cut_at_deadline")} == {
            "campaign_run_id": run, "state": "finished", "counts": {"delivered": 8, "failed": 2},
            "released": 10, "held_out": 0, "cut_at_deadline": 0}
        assert event["finished_at"] is not None
        assert await conn.fetchval("SELECT count(*) FROM campaign_run_tallies WHERE run_id = $1",
                                   run) == 0


async def test_an_accepted_message_without_receipt_holds_the_run_until_the_wait_passed(
    database_url: str, pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        tenant = await make_tenant(conn, prefix="lifewait")
        run, ids = await _released_run(conn, tenant, 4, prefix=f"lifewait{tenant.id}-")
        await _accept(conn, ids)
        await _receipts(conn, ids[:3], "delivered")
        await _lifecycle(database_url, pool, receipt_wait_s=3600).step()
        assert (await _run(conn, run))["state"] == "running"
        await _lifecycle(database_url, pool, receipt_wait_s=0).step()
        row = await _run(conn, run)
        assert (row["state"], row["counts"]) == ("finished", {"accepted": 1, "delivered": 3})


async def test_an_expired_message_ends_the_run_finished_with_expired(
    database_url: str, pool: asyncpg.Pool,
) -> None:
    lifecycle = _lifecycle(database_url, pool, receipt_wait_s=3600)
    async with pool.acquire() as conn:
        tenant = await make_tenant(conn, prefix="lifeexp")
        run, ids = await _released_run(conn, tenant, 3, prefix=f"lifeexp{tenant.id}-")
        await _accept(conn, ids)
        await _receipts(conn, ids[:2], "delivered")
        await _receipts(conn, ids[2:], "expired")
        await lifecycle.step()
        row = await _run(conn, run)
        assert (row["state"], row["counts"]) == ("finished_with_expired",
                                                 {"delivered": 2, "expired": 1})


async def test_a_paused_run_is_left_alone(database_url: str, pool: asyncpg.Pool) -> None:
    lifecycle = _lifecycle(database_url, pool, receipt_wait_s=0)
    async with pool.acquire() as conn:
        tenant = await make_tenant(conn, prefix="lifepause")
        run, ids = await _released_run(conn, tenant, 2, prefix=f"lifepause{tenant.id}-")
        await conn.execute("UPDATE campaign_runs SET state = 'paused' WHERE id = $1", run)
        await _accept(conn, ids)
        await _receipts(conn, ids, "delivered")
        await lifecycle.step()
        assert (await _run(conn, run))["finished_at"] is None
        await conn.execute("UPDATE campaign_runs SET state = 'running' WHERE id = $1", run)
        await lifecycle.step()
        assert (await _run(conn, run))["state"] == "finished"

"""The webhook worker's queue SQL on the real PostgreSQL: what a claim reads, a message's later
event kept behind an earlier one in retry, a disabled endpoint's deliveries parked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from hexcast.core.db import refresh_stats
from hexcast.testing.db import throwaway_database
from sender.webhooks import queue, repo
from sender.webhooks.retention import prune
from tests.integration.webhookkit import deliver, new_messages, tenant_with_endpoint

TYPES = ["message.accepted", "message.delivered"]
URL = "http://127.0.0.1:9/hook"


@pytest.fixture
async def conn() -> AsyncIterator[asyncpg.Connection]:
    """A database of its own: claims take every due delivery, other tests' included."""
    async with throwaway_database("hexcast_test_whq_") as url:
        connection = await asyncpg.connect(url)
        await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                                        schema="pg_catalog")
        yield connection
        await connection.close()


async def _fan_out_all(conn: asyncpg.Connection) -> None:
    while await queue.fan_out(conn, limit=1000):
        pass


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _claim_read(conn: asyncpg.Connection, limit: int) -> tuple[int, int]:
    """(rows a claim takes, pending deliveries it reads): its EXPLAIN ANALYZE, rolled back."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + queue._CLAIM, limit, 60.0)
    finally:
        await transaction.rollback()
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    scans = [n for n in _nodes(plan) if n.get("Relation Name") == "webhook_deliveries"
             and n.get("Alias") == "d_1"]
    read = sum(int(n["Actual Rows"]) + int(n.get("Rows Removed by Filter", 0)) for n in scans)
    return int(plan["Actual Rows"]), read


async def test_a_claim_reads_what_it_takes_and_what_waits_in_front(
        conn: asyncpg.Connection) -> None:
    tenant, _, _ = await tenant_with_endpoint(conn, prefix="whq", url=URL, types=TYPES)
    await deliver(conn, await new_messages(conn, tenant_id=tenant.id, prefix="whq-", n=3000))
    await _fan_out_all(conn)
    for table in ("webhook_outbox", "webhook_deliveries"):
        await refresh_stats(conn, table=table)  # as the worker does every few seconds
    in_flight = await queue.claim(conn, limit=200, lease_s=60)
    assert len(in_flight) == 200
    taken, read = await _claim_read(conn, 100)
    pending = await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'")
    assert (taken, pending) == (100, 6000)
    # the 200 in flight, then what it takes (blocked rows would sit behind those): never the backlog
    assert read <= 2 * (200 + 100), read


async def _delivery(conn: asyncpg.Connection, key: str, event: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT d.id, d.next_at, d.state, d.sequence FROM webhook_deliveries d"
        " JOIN webhook_outbox o ON o.id = d.outbox_id WHERE d.subject = $1 AND o.type = $2",
        key, event)
    assert row is not None
    return row


async def test_a_later_event_never_comes_due_before_an_earlier_one_in_retry(
        conn: asyncpg.Connection) -> None:
    tenant, _, _ = await tenant_with_endpoint(conn, prefix="whqr", url=URL, types=TYPES)
    ids = await new_messages(conn, tenant_id=tenant.id, prefix="whqr-", n=2)
    await deliver(conn, ids, status=None)  # accepted only
    await _fan_out_all(conn)
    claimed = await queue.claim(conn, limit=10, lease_s=60)
    assert len(claimed) == 2
    # whqr-2's receipt arrives while its acceptance is in flight; whqr-1's after the retry
    await deliver(conn, {"whqr-2": ids["whqr-2"]}, accept=False)
    await _fan_out_all(conn)
    failed = await queue.retry(conn, ids=[r["id"] for r in claimed], lease=claimed[0]["lease_until"],
                               schedule=[0, 300, 3600], error="HTTP 500")
    assert failed == 0
    await deliver(conn, {"whqr-1": ids["whqr-1"]}, accept=False)
    await _fan_out_all(conn)
    for key in ids:
        accepted = await _delivery(conn, key, "message.accepted")
        delivered = await _delivery(conn, key, "message.delivered")
        assert accepted["state"] == delivered["state"] == "pending"
        assert (accepted["next_at"] - datetime.now(accepted["next_at"].tzinfo)).total_seconds() > 250
        assert delivered["next_at"] >= accepted["next_at"], key  # bumped (2) or fanned out behind (1)
    assert await queue.claim(conn, limit=10, lease_s=60) == []


async def test_a_disabled_endpoints_deliveries_are_parked_until_it_is_enabled(
        conn: asyncpg.Connection) -> None:
    tenant, endpoint_id, _ = await tenant_with_endpoint(conn, prefix="whqp", url=URL, types=TYPES)
    await deliver(conn, await new_messages(conn, tenant_id=tenant.id, prefix="whqp-", n=3),
                  status=None)
    await _fan_out_all(conn)
    assert await queue.disable(conn, endpoint_id=endpoint_id, reason="the endpoint answered 410")
    parked = await conn.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'pending'"
        " AND next_at = 'infinity'", endpoint_id)
    assert parked == 3
    assert await queue.claim(conn, limit=10, lease_s=60) == []
    row = await repo.update_endpoint(conn, tenant_id=tenant.id, endpoint_id=endpoint_id,
                                     changes={"enabled": True})
    assert row is not None
    assert row["enabled"]
    claimed = await queue.claim(conn, limit=10, lease_s=60)
    assert sorted(r["payload"]["data"]["message_key"] for r in claimed) == \
        ["whqp-1", "whqp-2", "whqp-3"]
    # disabled by the tenant this time: parked again, except what is in flight keeps its lease
    await repo.update_endpoint(conn, tenant_id=tenant.id, endpoint_id=endpoint_id,
                               changes={"enabled": False})
    assert await queue.retry(conn, ids=[r["id"] for r in claimed], lease=claimed[0]["lease_until"],
                             schedule=[0, 5], error="HTTP 500") == 0
    assert await conn.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND next_at = 'infinity'",
        endpoint_id) == 3


async def test_retention_deletes_old_events_but_not_pending_ones(conn: asyncpg.Connection) -> None:
    tenant, endpoint_id, _ = await tenant_with_endpoint(conn, prefix="whqo", url=URL, types=TYPES)
    await deliver(conn, await new_messages(conn, tenant_id=tenant.id, prefix="whqo-", n=4),
                  status=None)
    await _fan_out_all(conn)
    claimed = await queue.claim(conn, limit=10, lease_s=60)
    done, waiting = claimed[:3], claimed[3:]
    await queue.succeeded(conn, endpoint_id=endpoint_id, webhook_id="evt_x",
                          event_ids=[r["event_id"] for r in done], status=200, duration_ms=1.0,
                          ids=[r["id"] for r in done], lease=claimed[0]["lease_until"])
    await conn.execute("UPDATE webhook_outbox SET created_at = created_at - interval '31 days'")
    await conn.execute("UPDATE webhook_attempts SET at = at - interval '31 days'")
    assert await prune(conn, older_than_s=30 * 86_400, limit=2) == (2, 1)
    assert await prune(conn, older_than_s=30 * 86_400, limit=2) == (1, 0)
    assert await prune(conn, older_than_s=30 * 86_400, limit=2) == (0, 0)
    left = await conn.fetch("SELECT d.id, d.state FROM webhook_deliveries d"
                            " JOIN webhook_outbox o ON o.id = d.outbox_id")
    assert [(r["id"], r["state"]) for r in left] == [(waiting[0]["id"], "pending")]

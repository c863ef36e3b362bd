"""The audit trail: the three moves of every send (enqueue, claim, acceptance) write one row per
statement, the others one per message, and a message's history is both in the order they
happened (migration 0011)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from hexcast.testing import make_tenant
from sender import queries, repo
from sender.models import Lane, MessageState, SendRequest


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection; the tenants a test made (prefix ``audit``) and their messages go after."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.execute("DELETE FROM tenants WHERE name LIKE 'audit-%'")
        await connection.close()


def _items(tenant: int, phones: list[str], prefix: str) -> list[SendRequest]:
    return [SendRequest(message_key=f"{prefix}-{n:04d}", tenant_id=tenant, phone=p, body="Sale")
            for n, p in enumerate(phones)]


async def _history(conn: asyncpg.Connection, tenant: int, key: str) -> list[tuple[str, str]]:
    _, events = await queries.message_history(conn, tenant_id=tenant, message_key=key)
    return [(e["to_state"], e["actor"]) for e in events]


async def test_history_merges_statement_and_message_events_in_order(conn: asyncpg.Connection) -> None:
    phones = [f"+1312410{n:04d}" for n in range(30)]
    tenant = (await make_tenant(conn, prefix="audit", consenting=phones)).id
    items = _items(tenant, phones, "bulk-audit")
    rows, _ = await repo.enqueue(conn, lane=Lane.BULK, items=items, actor="enq")
    ids = [r.id for r in rows]
    assert await repo.claim_for_sending(conn, ids=ids, provider="p1", actor="claim",
                                        reason="claimed") == set(ids)
    await repo.mark_accepted(conn, accepted=[(i, f"pm-{i}") for i in ids[:20]], actor="acc")
    await repo.apply_receipts(conn, receipts=[(items[0].message_key, "delivered", None)],
                              actor="dlr")
    await repo.transition(conn, ids=ids[20:], to=MessageState.FAILED,
                          from_states=[MessageState.SENDING], reason="gave up", actor="sweep")

    assert await _history(conn, tenant, items[0].message_key) == [
        ("queued", "enq"), ("sending", "claim"), ("accepted", "acc"), ("delivered", "dlr")]
    assert await _history(conn, tenant, items[25].message_key) == [
        ("queued", "enq"), ("sending", "claim"), ("failed", "sweep")]
    # three statements over 30 messages: three statement rows; per-message rows for the rest
    statements = await conn.fetch(
        "SELECT to_state::text, cardinality(message_ids) AS n FROM message_statement_events"
        " WHERE span && int8range($1, $2, '[]') ORDER BY id", min(ids), max(ids))
    assert [(r["to_state"], r["n"]) for r in statements] == [
        ("queued", 30), ("sending", 30), ("accepted", 20)]
    per_message = await conn.fetchval(
        "SELECT count(*) FROM message_events WHERE message_id = ANY($1::bigint[])", ids)
    assert per_message == 1 + 10


async def test_a_statement_that_moves_nothing_writes_no_row(conn: asyncpg.Connection) -> None:
    tenant = (await make_tenant(conn, prefix="audit")).id
    rows, _ = await repo.enqueue(conn, lane=Lane.BULK, items=_items(
        tenant, ["+13124200001"], "bulk-none"), actor="enq")
    before = await conn.fetchval("SELECT count(*) FROM message_statement_events")
    # no consent record: the claim moves nothing; the acceptance finds nothing in `sending`
    assert await repo.claim_for_sending(conn, ids=[rows[0].id], provider="p1", actor="c",
                                        reason="claimed") == set()
    assert await repo.mark_accepted(conn, accepted=[(rows[0].id, "pm")], actor="a") == set()
    assert await conn.fetchval("SELECT count(*) FROM message_statement_events") == before


async def test_statement_events_refuse_updates(conn: asyncpg.Connection) -> None:
    tenant = (await make_tenant(conn, prefix="audit")).id
    await repo.enqueue(conn, lane=Lane.GEO, items=_items(tenant, ["+13124300001"], "geo-ro"),
                       actor="enq-ro")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await conn.execute("UPDATE message_statement_events SET actor = 'x'"
                           " WHERE actor = 'enq-ro'")


async def test_deleting_messages_keeps_statement_rows_of_messages_left(conn: asyncpg.Connection) -> None:
    """One enqueue over two tenants' messages is one row: deleting one tenant keeps it for the
    other's history; deleting the other too removes it."""
    gone, kept = [(await make_tenant(conn, prefix="audit")).id for _ in range(2)]
    items = [*_items(gone, ["+13124400001", "+13124400002"], "geo-gone"),
             *_items(kept, ["+13124400003"], "geo-kept")]
    await repo.enqueue(conn, lane=Lane.GEO, items=items, actor="enq-del")
    count = "SELECT count(*) FROM message_statement_events WHERE actor = 'enq-del'"
    await conn.execute("DELETE FROM tenants WHERE id = $1", gone)
    assert await conn.fetchval(count) == 1
    assert await _history(conn, kept, "geo-kept-0000") == [("queued", "enq-del")]
    await conn.execute("DELETE FROM tenants WHERE id = $1", kept)
    assert await conn.fetchval(count) == 0

"""Migrations apply once; a second run changes nothing; the audit trail is append-only; the
claim of a message before its provider call writes no index entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from hexcast.core.db import apply_migrations, available_migrations, refresh_stats
from hexcast.testing import (
    add_consenting_recipients,
    create_database,
    drop_database,
    dsn,
    make_tenant,
    throwaway_database,
)
from sender import repo
from sender.models import Lane, SendRequest


async def _schema(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY 1, 2"
    )
    return [tuple(r) for r in rows]


async def test_apply_twice_is_a_no_op() -> None:
    name = await create_database()  # applies every migration once
    try:
        conn = await asyncpg.connect(dsn(name))
        try:
            before = await _schema(conn)
            assert await apply_migrations(conn) == []
            assert await _schema(conn) == before
            versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
            assert versions == [m.version for m in available_migrations()]
        finally:
            await conn.close()
    finally:
        await drop_database(name)


async def test_message_events_refuse_updates(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tenant = (await make_tenant(conn, name="audit-t")).id
        msg = await conn.fetchval(
            "INSERT INTO messages (message_key, tenant_id, lane, phone, body)"
            " VALUES ('geo-audit-1', $1, 'geo', '+13122000001', 'hi') RETURNING id", tenant)
        await conn.execute(
            "INSERT INTO message_events (message_id, to_state, actor) VALUES ($1, 'queued', 't')", msg)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE message_events SET actor = 'x' WHERE message_id = $1", msg)
    finally:
        await conn.execute("DELETE FROM tenants WHERE name = 'audit-t'")
        await conn.close()


async def test_deleting_a_tenant_deletes_its_message_events(database_url: str) -> None:
    """No foreign key on message_events (a per-row cost on the hot path): a statement trigger
    removes the events of deleted messages, also when a tenant's deletion cascades."""
    conn = await asyncpg.connect(database_url)
    try:
        tenants = [(await make_tenant(conn, name=name)).id for name in ("events-gone", "events-kept")]
        for n, tenant in enumerate(tenants):
            msg = await conn.fetchval(
                "INSERT INTO messages (message_key, tenant_id, lane, phone, body)"
                " VALUES ($1, $2, 'geo', '+13122000001', 'hi') RETURNING id", f"geo-cascade-{n}", tenant)
            await conn.execute("INSERT INTO message_events (message_id, to_state, actor)"
                               " VALUES ($1, 'queued', 't'), ($1, 'sending', 't')", msg)
        await conn.execute("DELETE FROM tenants WHERE id = $1", tenants[0])
        left = await conn.fetch("SELECT m.tenant_id, count(*) AS n FROM message_events e"
                                " LEFT JOIN messages m ON m.id = e.message_id"
                                " WHERE e.actor = 't' GROUP BY 1")
        assert [(r["tenant_id"], r["n"]) for r in left] == [(tenants[1], 2)]
    finally:
        await conn.execute("DELETE FROM tenants WHERE name LIKE 'events-%'")
        await conn.close()


async def test_refresh_stats_analyzes_a_fresh_bulk_load_once() -> None:
    """A COPY of recipients leaves the planner without statistics (this machine runs with
    autovacuum off, and autovacuum lags a bulk load anyway): refresh_stats analyzes the table
    then, and not again until enough of it changed; other tables are refused."""
    name = await create_database()
    try:
        conn = await asyncpg.connect(dsn(name))
        try:
            tenant = (await make_tenant(conn, name="stats-t")).id
            await conn.copy_records_to_table(
                "recipients", records=[(tenant, f"u{n}", f"+1312{n:07d}") for n in range(5_000)],
                columns=["tenant_id", "user_id", "phone"])

            async def known_rows() -> float:
                return float(await conn.fetchval(
                    "SELECT reltuples FROM pg_class WHERE oid = 'recipients'::regclass"))

            assert await known_rows() < 0  # never analyzed
            assert await refresh_stats(conn, table="recipients") is True
            assert await known_rows() == 5_000
            assert await refresh_stats(conn, table="recipients") is False
            with pytest.raises(ValueError, match="not an analyzable table"):
                await refresh_stats(conn, table="tenants; DROP TABLE messages")
        finally:
            await conn.close()
    finally:
        await drop_database(name)


async def test_the_claim_writes_no_index_entry() -> None:
    """queued → sending is a HOT update (no index mentions the state, migration 0010): the
    sweeper's and the deferral's indexes follow the state through generated columns. A database
    of its own: the sweeper's walk reads the whole lane, whatever other tests left in it."""
    async with throwaway_database() as url:
        await _claim_is_hot(url)


async def _claim_is_hot(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        tenant = (await make_tenant(conn, name="hot-t")).id
        items = [SendRequest(message_key=f"bulk-hot-{n:04d}", tenant_id=tenant,
                             phone=f"+1312300{n:04d}", body="Sale today") for n in range(200)]
        rows, screened = await repo.enqueue(conn, lane=Lane.BULK, items=items, actor="t")
        ids = [r.id for r in rows]
        # no recipient profiles yet: no zones, and marketing without consent is blocked
        assert screened.blocked == screened.ids == set(ids)
        assert screened.zones == {(tenant, i.phone): None for i in items}
        async with conn.transaction():
            claimed = await repo.claim_for_sending(conn, ids=ids[:100], provider="p1", actor="t",
                                                   reason="claimed")
            # consent is required on the bulk lane: no recipient rows, so nothing is claimed
            assert claimed == set()
            await add_consenting_recipients(conn, tenant_id=tenant, phones=[i.phone for i in items])
            claimed = await repo.claim_for_sending(conn, ids=ids[:100], provider="p1", actor="t",
                                                   reason="claimed")
            hot = await conn.fetchval(
                "SELECT pg_stat_get_xact_tuples_hot_updated('messages'::regclass)")
        assert claimed == set(ids[:100])
        assert hot == 100
        page = await repo.stale_rows(conn, lane=Lane.BULK, older_than_s=-60, after_id=0,
                                     limit=1000)
        assert [r.id for r in page.stale] == sorted(ids)
        assert not page.more
        page = await repo.stale_rows(conn, lane=Lane.BULK, older_than_s=-60, after_id=0, limit=150)
        assert (len(page.stale), page.last_id, page.more) == (150, sorted(ids)[149], True)
        young = await repo.stale_rows(conn, lane=Lane.BULK, older_than_s=60, after_id=0,
                                      limit=1000)
        assert (young.stale, young.more) == ([], False)  # the first row is young: the walk ends
        await repo.mark_accepted(conn, accepted=[(i, f"pm-{i}") for i in ids[:50]], actor="t")
        until = datetime.now(UTC) - timedelta(minutes=1)
        await repo.defer(conn, deferrals=[(i, until) for i in ids[100:110]], reason="quiet ",
                         actor="t")
        page = await repo.stale_rows(conn, lane=Lane.BULK, older_than_s=-60, after_id=0,
                                     limit=1000)
        assert [r.id for r in page.stale] == sorted(ids[50:100] + ids[110:])
        due = await repo.due_deferred(conn, now=datetime.now(UTC), limit=100)
        assert [r.id for r in due] == ids[100:110]
        await conn.execute("UPDATE recipients SET time_zone = 'America/Denver' WHERE phone = $1",
                           items[0].phone)
        await conn.execute("INSERT INTO opt_outs (tenant_id, phone, source) VALUES ($1, $2, 't')",
                           tenant, items[1].phone)
        more = [SendRequest(message_key=f"bulk-hot-more-{n}", tenant_id=tenant,
                            phone=items[n].phone, body="Again", confirmation=n == 2)
                for n in range(3)]
        await conn.execute("INSERT INTO opt_outs (tenant_id, phone, source) VALUES ($1, $2, 't')",
                           tenant, items[2].phone)
        rows, screened = await repo.enqueue(conn, lane=Lane.BULK, items=more, actor="t")
        by_key = {r.message_key: r.id for r in rows}
        assert screened.blocked == {by_key["bulk-hot-more-1"]}  # a confirmation goes anyway
        assert screened.zones[(tenant, items[0].phone)] == "America/Denver"
    finally:
        await conn.execute("DELETE FROM tenants WHERE name = 'hot-t'")
        await conn.close()


async def test_enqueue_returns_the_rows_as_stored(database_url: str) -> None:
    """New rows are built from the requests (only ids and times come back from the insert):
    they equal what a read of the table gives, a key twice in a batch is one row, and a key
    already there comes back as stored, not as requested."""
    conn = await asyncpg.connect(database_url)
    try:
        tenant = (await make_tenant(conn, name="enq-t")).id
        soon = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        first = [SendRequest(message_key=f"enqueue-{n}", tenant_id=tenant, user_id=f"u{n}",
                             phone=f"+1312555{n:04d}", body=f"Hi {n}", expires_at=soon,
                             promotion_id=None, campaign_run_id=None) for n in range(3)]
        await repo.enqueue(conn, lane=Lane.GEO, items=first[:1], actor="t")
        again = [*first, first[1].model_copy(update={"body": "twice"}),
                 first[0].model_copy(update={"body": "changed"})]
        rows, screened = await repo.enqueue(conn, lane=Lane.GEO, items=again, actor="t")
        stored = {r.message_key: r for r in map(repo._row, await conn.fetch(
            f"SELECT {repo._COLS} FROM messages WHERE tenant_id = $1", tenant))}
        assert sorted(r.message_key for r in rows) == ["enqueue-0", "enqueue-1", "enqueue-2"]
        assert {r.message_key: r for r in rows} == stored
        assert stored["enqueue-0"].body == "Hi 0"
        assert stored["enqueue-1"].body == "Hi 1"
        assert screened.ids == {stored["enqueue-1"].id, stored["enqueue-2"].id}
    finally:
        await conn.execute("DELETE FROM tenants WHERE name = 'enq-t'")
        await conn.close()

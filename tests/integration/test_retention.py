"""Retention of the message log against PostgreSQL (``sender.retention``, migration 0029), and
the README's PostgreSQL backup and restore, run as written.

- Final messages (delivered, failed, expired, suppressed) older than the retention go, in
  batches of the configured size, with their events, statement events, provider parts and
  receipts, short links and clicks; recent ones and old unsettled ones (queued, sending,
  accepted, deferred, unknown) stay with theirs; a row another transaction holds is skipped,
  not waited for; a second run deletes nothing.
- ``hexcast messages prune --yes`` prints what went and is in the operator audit log; the
  scheduler's task prunes on its own.
- The README's pg_dump / pg_restore / migrate commands give a database with the same messages.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from hexcast.core.db import Conn, connect_pool
from hexcast.testing import fetch_rows, make_settings, make_tenant
from hexcast.testing.db import database_name, drop_database, dsn
from sender import prune_messages, prune_messages_every

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+17385550"  # this module's numbers
OLD = datetime.now(UTC) - timedelta(days=120)
FINAL = ["delivered", "delivered", "delivered", "failed", "failed", "expired", "suppressed"]
UNSETTLED = ["queued", "sending", "accepted", "deferred", "unknown"]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with await connect_pool(database_url, max_size=3) as pool:
        yield pool


async def _messages(conn: Conn, tenant_id: int, states: list[str], *, at: datetime) -> list[int]:
    """Messages of ``tenant_id`` in ``states``, created and last changed ``at``, each with an
    event, a provider part and receipts (by key and by provider id) and a short link clicked
    by a human and a bot; their ids."""
    tag = uuid.uuid4().hex[:10]
    keys = [f"ret-{tag}-{i}" for i in range(len(states))]
    rows = await conn.fetch(
        "INSERT INTO messages (message_key, client_ref, tenant_id, lane, phone, body, state,"
        " provider, provider_message_id, created_at, updated_at)"
        " SELECT k, k, $1, 'bulk', $2 || lpad(i::text, 3, '0'), 'hi', s::message_state, 'sim',"
        " 'pm-' || k, $4, $4 FROM unnest($3::text[], $5::text[]) WITH ORDINALITY AS u(k, s, i)"
        " RETURNING id", tenant_id, PHONE, keys, at, states)
    ids = [r["id"] for r in rows]
    await conn.execute(
        "INSERT INTO message_events (message_id, to_state, actor) SELECT id, 'queued', 'test'"
        " FROM unnest($1::bigint[]) AS id", ids)
    await conn.execute(
        "INSERT INTO message_statement_events (message_ids, span, to_state, actor)"
        " VALUES ($1, int8range($2, $3, '[]'), 'sending', 'test')", ids, min(ids), max(ids))
    await conn.execute(
        "INSERT INTO provider_parts (provider, part_id, message_key, part, parts)"
        " SELECT 'sim', 'part-' || k, k, 1, 1 FROM unnest($1::text[]) AS k", keys)
    await conn.execute(
        "INSERT INTO provider_receipts (provider, ref, by_ref, status)"
        " SELECT 'sim', r, b, 'delivered' FROM unnest($1::text[]) AS k,"
        " LATERAL (VALUES (k, true), ('pm-' || k, false), ('part-' || k, false)) AS v(r, b)", keys)
    await conn.execute(
        "INSERT INTO short_links (code, tenant_id, message_key, url)"
        " SELECT 'c' || k, $1, k, 'https://example.com' FROM unnest($2::text[]) AS k",
        tenant_id, keys)
    await conn.execute(
        "INSERT INTO link_clicks (code, bot) SELECT 'c' || k, b FROM unnest($1::text[]) AS k,"
        " unnest(ARRAY[true, false]) AS b", keys)
    return ids


async def _left(conn: Conn, ids: list[int]) -> dict[str, int]:
    """How many of these messages are left, and of the rows keyed by them."""
    keys = [r["message_key"] for r in await conn.fetch(
        "SELECT message_key FROM messages WHERE id = ANY($1::bigint[])", ids)]
    counts = {"messages": len(keys)}
    for name, sql, args in (
        ("events", "message_events WHERE message_id = ANY($1::bigint[])", ids),
        ("statement_events", "message_statement_events WHERE message_ids && $1::bigint[]", ids),
        ("parts", "provider_parts WHERE message_key = ANY($1::text[])", keys),
        ("receipts", "provider_receipts WHERE ref = ANY($1::text[])",
         [f"{p}{k}" for k in keys for p in ("", "pm-", "part-")]),
        ("clicks", "link_clicks WHERE code = ANY($1::text[])", [f"c{k}" for k in keys]),
    ):
        counts[name] = await conn.fetchval(f"SELECT count(*) FROM {sql}", args)
    return counts


def _expected(n: int) -> dict[str, int]:
    """What :func:`_messages` wrote for ``n`` messages (one statement event for them all)."""
    return {"messages": n, "events": n, "statement_events": 1, "parts": n, "receipts": 3 * n,
            "clicks": 2 * n}


async def _gone(conn: Conn, keys: list[str]) -> int:
    """Rows still keyed by these (deleted) messages' keys."""
    refs = [f"{p}{k}" for k in keys for p in ("", "pm-", "part-")]
    return int(await conn.fetchval(
        "SELECT (SELECT count(*) FROM provider_receipts WHERE ref = ANY($2::text[]))"
        " + (SELECT count(*) FROM provider_parts WHERE message_key = ANY($1::text[]))"
        " + (SELECT count(*) FROM short_links WHERE message_key = ANY($1::text[]))"
        " + (SELECT count(*) FROM link_clicks WHERE code = ANY($3::text[]))",
        keys, refs, [f"c{k}" for k in keys]))


async def test_prune_takes_old_final_messages_in_batches_with_their_dependants(
    database_url: str, pool: asyncpg.Pool
) -> None:
    tenant = await make_tenant(database_url, prefix="retention")
    async with pool.acquire() as conn:
        doomed = await _messages(conn, tenant.id, FINAL, at=OLD)
        unsettled = await _messages(conn, tenant.id, UNSETTLED, at=OLD)
        recent = await _messages(conn, tenant.id, ["delivered", "failed"], at=datetime.now(UTC))
        key = {r["id"]: r["message_key"] for r in await conn.fetch(
            "SELECT id, message_key FROM messages WHERE id = ANY($1::bigint[])", doomed)}
    held, blocker = doomed[0], await asyncpg.connect(database_url)
    try:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", held)
        pruned = await asyncio.wait_for(prune_messages(pool, older_than_days=90, batch=3), 30)
        await lock.rollback()
    finally:
        await blocker.close()

    # Full batches of 3 while rows are left (other tests' old rows may add to them).
    assert pruned.messages >= len(doomed) - 1
    assert all(n == 3 for n in pruned.batches[:-1])
    assert 0 < pruned.batches[-1] <= 3
    async with pool.acquire() as conn:
        left = await _left(conn, doomed)  # the held one was skipped, not waited for
        assert left == _expected(1)
        assert await _gone(conn, [key[i] for i in doomed if i != held]) == 0
        assert await _left(conn, unsettled) == _expected(len(UNSETTLED))
        assert await _left(conn, recent) == _expected(2)

    # The CLI takes the one that was held, and says so; then nothing is left to take.
    cli = await _run([sys.executable, "-m", "hexcast", "messages", "prune",
                      "--older-than-days", "90", "--yes"],
                     env={**os.environ, "HEXCAST_DATABASE_URL": database_url})
    assert cli.returncode == 0, cli.stderr
    assert re.search(r"deleted [1-9]\d* messages", cli.stdout), cli.stdout
    async with pool.acquire() as conn:
        assert await _left(conn, doomed) == dict.fromkeys(_expected(0), 0)
        assert await _gone(conn, list(key.values())) == 0
        assert await conn.fetchval(
            "SELECT count(*) FROM operator_actions WHERE action = 'messages.prune'"
            " AND actor LIKE 'cli:%' AND at > now() - interval '5 minutes'") >= 1
    again = await prune_messages(pool, older_than_days=90, batch=3)
    assert (again.messages, again.batches, again.dependants) == (0, (), 0)


async def test_scheduler_task_prunes_on_its_own(database_url: str, pool: asyncpg.Pool) -> None:
    tenant = await make_tenant(database_url, prefix="retention")
    async with pool.acquire() as conn:
        doomed = await _messages(conn, tenant.id, ["delivered", "expired"], at=OLD)
        kept = await _messages(conn, tenant.id, ["accepted"], at=OLD)
    settings = make_settings("kafka://127.0.0.1:9", database_url, message_retention_every_s=0.2,
                             message_retention_days=30)
    task = asyncio.create_task(prune_messages_every(pool, settings))
    try:
        for _ in range(200):  # polled: the task runs at once, then every 0.2 s
            rows = await fetch_rows(database_url, "SELECT id FROM messages"
                                    " WHERE id = ANY($1::bigint[])", doomed + kept)
            if [r["id"] for r in rows] == kept:
                break
            await asyncio.sleep(0.1)
        assert [r["id"] for r in rows] == kept
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    off = make_settings("kafka://127.0.0.1:9", database_url, message_retention_every_s=0)
    await asyncio.wait_for(prune_messages_every(pool, off), 5)  # 0: returns at once


async def _run(argv: list[str], *, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A command run to its end off the event loop."""
    return await asyncio.to_thread(subprocess.run, argv, env=env, capture_output=True, text=True,
                                   timeout=120)


def _documented_restore() -> list[str]:
    """The commands of the README's backup and restore block, as written."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Backing up and restoring PostgreSQL", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


async def test_readme_backup_and_restore_gives_the_same_messages(
    database_url: str, tmp_path: Path
) -> None:
    tenant = await make_tenant(database_url, prefix="retention")
    conn = await asyncpg.connect(database_url)
    try:
        await _messages(conn, tenant.id, ["delivered", "accepted"], at=datetime.now(UTC))
        want = await conn.fetchval("SELECT count(*) FROM messages")
    finally:
        await conn.close()
    name = database_name("hexcast_restore_")
    env = {**os.environ, "HEXCAST_DATABASE_URL": database_url, "BACKUP": str(tmp_path / "x.dump"),
           "RESTORE_DB": name, "RESTORE_URL": dsn(name, server=database_url),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    try:
        for command in _documented_restore():
            done = await _run(["bash", "-euc", command], env=env)
            assert done.returncode == 0, (command, done.stderr[-2000:])
        restored = await fetch_rows(dsn(name, server=database_url),
                                    "SELECT count(*) AS n, (SELECT max(version)"
                                    " FROM schema_migrations) AS v FROM messages")
        source = await fetch_rows(database_url, "SELECT max(version) AS v FROM schema_migrations")
        assert (restored[0]["n"], restored[0]["v"]) == (want, source[0]["v"])
    finally:
        await drop_database(name, server=database_url)

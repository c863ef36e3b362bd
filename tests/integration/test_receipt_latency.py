"""The receipt latency histogram against PostgreSQL: one observation a message a receipt
settled after its acceptance, however many times and by however many paths at once its
receipts are applied (a callback's settle and the acceptance's settle racing, a retried
callback, a DLR batch naming a message twice). Each test has a route of its own, so its
series starts at zero in this process's registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import REGISTRY

from hexcast.core.bus import Bus
from hexcast.core.db import connect_pool
from hexcast.core.settings import load_settings
from hexcast.testing import make_tenant
from sender import dlr, repo, settle
from sender.models import Lane, SendRequest
from sender.providers import Receipt, StatusTable
from sender.providers.status import DeliveryStatus

D, F = DeliveryStatus.DELIVERED, DeliveryStatus.FAILED
TABLE = StatusTable(kind="test", statuses={}, errors={})


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url, max_size=6)
    try:
        yield pool
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM tenants WHERE name LIKE 'rlat-%'")
            await conn.execute("DELETE FROM provider_receipts WHERE provider LIKE 'rlat-%'")
        await pool.close()


async def _accepted(pool: asyncpg.Pool, n: int) -> tuple[str, list[repo.MessageRow]]:
    """``n`` messages of a new tenant accepted by a route of their own (its name, the rows);
    message ``k``'s provider id is ``pm-<route>-<k>``."""
    phones = [f"+1312556{k:04d}" for k in range(n)]
    async with pool.acquire() as conn:
        tenant = (await make_tenant(conn, prefix="rlat", consenting=phones)).id
        route = f"rlat-{tenant}"
        items = [SendRequest(message_key=f"rlat-{tenant}-{k}", tenant_id=tenant, phone=p,
                             body="Hi") for k, p in enumerate(phones)]
        rows, _ = await repo.enqueue(conn, lane=Lane.TRANSACTIONAL, items=items, actor="test")
        await repo.claim_for_sending(conn, ids=[r.id for r in rows], provider=route,
                                     actor="test", reason="calling")
        await repo.accept_messages(conn, accepted=[(r.id, f"pm-{route}-{k}")
                                                   for k, r in enumerate(rows)], actor="test")
    return route, rows


def _observed(route: str) -> float:
    return REGISTRY.get_sample_value("hexcast_receipt_latency_seconds_count",
                                     {"provider": route}) or 0.0


async def _final(pool: asyncpg.Pool, rows: list[repo.MessageRow]) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval(
            "SELECT count(*) FROM messages WHERE id = ANY($1::bigint[])"
            " AND state::text IN ('delivered', 'failed') AND sent_at IS NOT NULL",
            [r.id for r in rows]))


async def test_a_callback_and_the_acceptance_settling_at_once_observe_each_message_once(
    pool: asyncpg.Pool,
) -> None:
    route, rows = await _accepted(pool, 24)
    ids = [f"pm-{route}-{k}" for k in range(len(rows))]
    receipts = [Receipt(i, F if k % 5 == 0 else D, code="30003" if k % 5 == 0 else None)
                for k, i in enumerate(ids)]
    async with pool.acquire() as conn:  # kept twice: the provider retried its callback
        kept = await settle.keep(conn, provider=route, table=TABLE, receipts=receipts)
        await settle.keep(conn, provider=route, table=TABLE, receipts=receipts[::-1])

    async def settled(*, by_ref: bool) -> int:
        async with pool.acquire() as conn:
            if by_ref:  # as the acceptance does
                return len(await settle.settle(conn, refs=ids, actor="test-sender"))
            return len(await settle.settle(conn, keys=kept.keys, actor="test-callback"))

    # Three callbacks' settles and two acceptances', each on its own connection, race for the
    # same waiting receipts: PostgreSQL moves each message once, and only that is observed.
    changed = await asyncio.gather(*(settled(by_ref=n >= 3) for n in range(5)))
    assert sum(changed) == len(rows) == await _final(pool, rows)
    assert _observed(route) == len(rows)
    assert await settled(by_ref=False) == 0  # applied: nothing more, nothing observed
    assert _observed(route) == len(rows)


async def test_dlr_batches_naming_messages_twice_observe_each_message_once(
    pool: asyncpg.Pool, database_url: str,
) -> None:
    route, rows = await _accepted(pool, 12)
    bus = Bus(load_settings(database_url=database_url))  # never started: no receipt is dead-lettered
    batch = [(r.message_key, "delivered" if k % 3 else "failed", None if k % 3 else "30003")
             for k, r in enumerate(rows)]
    twice = batch + batch[::2] + [(r.message_key, "sent", None) for r in rows]
    changed = await asyncio.gather(
        *(dlr.apply_receipts(pool, bus, list(twice), actor="dlr-test") for _ in range(4)))
    assert sum(map(len, changed)) == len(rows) == await _final(pool, rows)
    assert _observed(route) == len(rows)
    assert await dlr.apply_receipts(pool, bus, batch, actor="dlr-test") == []
    assert _observed(route) == len(rows)

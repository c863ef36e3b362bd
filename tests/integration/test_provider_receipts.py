"""Provider receipts against PostgreSQL (``sender.settle``): parts roll up, a receipt that comes
before its acceptance waits and is applied by the acceptance, duplicated and out-of-order
callbacks change nothing, a carrier opt-out records an opt-out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from hexcast.core.db import connect_pool
from hexcast.testing import make_tenant
from sender import repo, settle
from sender.journal import Journal
from sender.models import DeliveryEvent, Lane, SendRequest
from sender.providers import Receipt, StatusTable
from sender.providers.status import DeliveryStatus, ErrorClass

D, F, S = DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.SENT
TABLE = StatusTable(kind="test", statuses={}, errors={"21610": ErrorClass.OPTED_OUT})


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url, max_size=2)
    try:
        yield pool
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM tenants WHERE name LIKE 'rcpt-%'")
            await conn.execute("DELETE FROM provider_receipts WHERE provider LIKE 'rcpt-%'")
            await conn.execute("DELETE FROM provider_parts WHERE provider LIKE 'rcpt-%'")
        await pool.close()


async def _sending(pool: asyncpg.Pool, n: int) -> tuple[int, list[repo.MessageRow]]:
    """``n`` messages of a new tenant, claimed for provider ``rcpt-a`` (not accepted yet)."""
    phones = [f"+1312555{k:04d}" for k in range(n)]
    async with pool.acquire() as conn:
        tenant = (await make_tenant(conn, prefix="rcpt", consenting=phones)).id
        items = [SendRequest(message_key=f"rcpt-{tenant}-{k}", tenant_id=tenant, phone=p, body="Hi")
                 for k, p in enumerate(phones)]
        rows, _ = await repo.enqueue(conn, lane=Lane.GEO, items=items, actor="test")
        await repo.claim_for_sending(conn, ids=[r.id for r in rows], provider="rcpt-a",
                                     actor="test", reason="calling")
    return tenant, rows


async def _state(pool: asyncpg.Pool, key: str) -> str:
    async with pool.acquire() as conn:
        return str(await conn.fetchval("SELECT state::text FROM messages WHERE message_key = $1", key))


async def _callback(pool: asyncpg.Pool, *receipts: Receipt) -> int:
    async with pool.acquire() as conn:
        kept = await settle.keep(conn, provider="rcpt-a", table=TABLE, receipts=receipts)
        return len(await settle.settle(conn, keys=kept.keys, unplaced=kept.unplaced,
                                       actor="test-callback"))


async def test_a_receipt_before_the_acceptance_waits_and_the_acceptance_applies_it(
    pool: asyncpg.Pool,
) -> None:
    _, rows = await _sending(pool, 2)
    assert await _callback(pool, Receipt("pm-early-1", D), Receipt("pm-early-2", D)) == 0
    assert await _state(pool, rows[0].message_key) == "sending"
    events: list[DeliveryEvent] = []

    async def publish(batch: list[DeliveryEvent]) -> None:
        events.extend(batch)

    journal = Journal(pool=pool, actor="sender-test", publish=publish)
    assert await journal.accept([(rows[0], "pm-early-1"), (rows[1], "pm-early-2")]) == 2
    assert [await _state(pool, r.message_key) for r in rows] == ["delivered", "delivered"]
    assert [(e.message_key, e.state.value) for e in events] == [
        (rows[0].message_key, "accepted"), (rows[1].message_key, "accepted"),
        (rows[0].message_key, "delivered"), (rows[1].message_key, "delivered")]
    assert await _callback(pool, Receipt("pm-early-1", D)) == 0  # a retried callback: nothing


async def test_parts_roll_up_and_late_or_repeated_callbacks_change_nothing(pool: asyncpg.Pool) -> None:
    _, rows = await _sending(pool, 1)
    key = rows[0].message_key
    part = lambda n, status: Receipt("x", status, client_ref=key, part=n, parts=3)  # noqa: E731
    assert await _callback(pool, part(1, D), part(2, S)) == 0
    assert await _state(pool, key) == "sending"  # two parts still open
    assert await _callback(pool, part(2, D), part(1, D), part(1, S)) == 0
    assert await _callback(pool, part(3, D)) == 1
    assert await _state(pool, key) == "delivered"
    assert await _callback(pool, part(3, F), part(2, S)) == 0  # final stays final
    assert await _state(pool, key) == "delivered"


def _part(part_id: str, status: DeliveryStatus = D, code: str | None = None) -> Receipt:
    """A receipt naming one part by the id the provider gave it (as Vonage's DLRs do)."""
    return Receipt(part_id, status, code=code, by_part_id=True)


async def test_parts_named_by_their_own_ids_are_placed_and_roll_up(pool: asyncpg.Pool) -> None:
    """The provider answered an id per part; each part's receipt names only its own id. The
    message is delivered once every part is, whichever came first, even before the acceptance."""
    _, rows = await _sending(pool, 2)
    key = rows[0].message_key
    assert await _callback(pool, _part("vp-2")) == 0  # before the acceptance: it waits
    journal = Journal(pool=pool, actor="sender-test", publish=_ignore)
    parts = {rows[0].id: ("vp-1", "vp-2", "vp-3")}
    assert await journal.accept([(rows[0], "vp-1"), (rows[1], "vp-9")], None, parts) == 2
    assert await _state(pool, key) == "accepted"  # parts 1 and 3 still open
    assert await _callback(pool, _part("vp-1"), _part("vp-1", S)) == 0
    assert await _state(pool, key) == "accepted"
    assert await _callback(pool, _part("vp-9")) == 1  # a single part: its id is the message's
    assert await _callback(pool, _part("vp-3")) == 1
    assert await _state(pool, key) == "delivered"
    assert await _callback(pool, _part("vp-3", F, "6")) == 0  # final stays final
    async with pool.acquire() as conn:
        kept = await conn.fetch("SELECT ref, part, parts, applied_at IS NOT NULL AS applied"
                                " FROM provider_receipts WHERE provider = 'rcpt-a' ORDER BY ref, part")
    assert [tuple(r) for r in kept] == [(key, 1, 3, True), (key, 2, 3, True), (key, 3, 3, True),
                                        ("vp-9", 1, 1, True)]


async def test_a_part_kept_while_its_acceptance_commits_is_placed_by_its_callback(
    pool: asyncpg.Pool,
) -> None:
    """The callback kept the receipt under the part's id before the part ids were committed,
    and settles it after: settling places it then."""
    _, rows = await _sending(pool, 1)
    key = rows[0].message_key
    async with pool.acquire() as conn:
        kept = await settle.keep(conn, provider="rcpt-a", table=TABLE,
                                 receipts=[_part("wp-2", F, "6")])
        await repo.mark_accepted(conn, accepted=[(rows[0].id, "wp-1")], actor="test",
                                 part_ids={rows[0].id: ("wp-1", "wp-2")})
        assert kept.unplaced == [("rcpt-a", "wp-2")]
        assert len(await settle.settle(conn, keys=kept.keys, unplaced=kept.unplaced,
                                       actor="test-callback")) == 1
        row = await conn.fetchrow("SELECT state::text, reason FROM messages WHERE message_key = $1",
                                  key)
    assert (row["state"], row["reason"]) == ("failed", "rcpt-a: 6 undelivered (part 2 of 2)")


async def _ignore(batch: list[DeliveryEvent]) -> None:
    return None


async def test_a_failed_part_fails_the_message_with_its_code(pool: asyncpg.Pool) -> None:
    _, rows = await _sending(pool, 1)
    key = rows[0].message_key
    assert await _callback(pool, Receipt("y", F, code="30008", client_ref=key, part=2, parts=2)) == 1
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT state::text, reason FROM messages WHERE message_key = $1", key)
    assert (row["state"], row["reason"]) == ("failed", "rcpt-a: 30008 undelivered (part 2 of 2)")


async def test_a_carrier_opt_out_records_an_opt_out_for_the_tenant(pool: asyncpg.Pool) -> None:
    tenant, rows = await _sending(pool, 1)
    key, phone = rows[0].message_key, rows[0].phone
    assert await _callback(pool, Receipt("z", F, code="21610", client_ref=key)) == 1
    async with pool.acquire() as conn:
        source = await conn.fetchval(
            "SELECT source FROM opt_outs WHERE tenant_id = $1 AND phone = $2", tenant, phone)
        opted = await conn.fetchval(
            "SELECT opted_out_at IS NOT NULL FROM recipients WHERE tenant_id = $1 AND phone = $2",
            tenant, phone)
    assert (source, opted) == ("carrier", True)

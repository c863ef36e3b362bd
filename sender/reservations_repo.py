"""SQL of cap reservations' bookkeeping (``cap_reservations``, migration 0025); the reservations
themselves are Redis bitmaps (``sender.reservations``).

A reserved run's row is ``filling`` while the scheduler writes its audience page by page (the
page's row lock keeps a cancellation waiting until the page is written, so the cancel drops
every bitmap it wrote), ``filled`` after, ``released`` once its run is cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg

from hexcast.core.db import Conn

__all__ = [
    "Released",
    "add_held_back",
    "advance_reservation",
    "claim_filling",
    "finish_filling",
    "release_reservations",
    "reservation_counts",
    "start_reservation",
]


@dataclass(frozen=True, slots=True)
class Released:
    """A run whose reservations are to be dropped: its tenant and the dates it wrote."""

    run_id: int
    tenant_id: int
    days: list[date]


async def start_reservation(conn: Conn, *, run_id: int, tenant_id: int) -> bool:
    """A reservation to fill for ``run_id``, unless its tenant turned reservations off
    (``tenants.reserve_caps``); True if there is one."""
    made = await conn.fetchval(
        "INSERT INTO cap_reservations (run_id, tenant_id) SELECT $1, id FROM tenants"
        " WHERE id = $2 AND reserve_caps ON CONFLICT DO NOTHING RETURNING run_id",
        run_id, tenant_id)
    return made is not None


async def claim_filling(conn: Conn) -> asyncpg.Record | None:
    """Lock one reservation still filling that nobody else is filling (call in a transaction:
    the lock is held until it ends). Columns: run_id, tenant_id, cursor_id, base_id."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT run_id, tenant_id, cursor_id, base_id FROM cap_reservations"
        " WHERE state = 'filling' ORDER BY run_id FOR UPDATE SKIP LOCKED LIMIT 1")
    return row


async def advance_reservation(
    conn: Conn, *, run_id: int, cursor_id: int, base_id: int, days: Sequence[date], reserved: int
) -> None:
    """Record a written page: the cursor, bit offset 0, the dates it touched, the count."""
    await conn.execute(
        "UPDATE cap_reservations SET cursor_id = $2, base_id = COALESCE(base_id, $3),"
        " days = ARRAY(SELECT DISTINCT d FROM unnest(days || $4::date[]) AS d ORDER BY d),"
        " reserved = reserved + $5 WHERE run_id = $1",
        run_id, cursor_id, base_id, list(days), reserved)


async def finish_filling(conn: Conn, *, run_id: int) -> None:
    await conn.execute(
        "UPDATE cap_reservations SET state = 'filled' WHERE run_id = $1 AND state = 'filling'",
        run_id)


async def release_reservations(conn: Conn, *, run_ids: Sequence[int]) -> list[Released]:
    """Mark the reservations of ``run_ids`` released (waiting for a page being written);
    returns those that were not yet, with the dates whose bitmaps are to be dropped."""
    rows = await conn.fetch(
        "UPDATE cap_reservations SET state = 'released'"
        " WHERE run_id = ANY($1::bigint[]) AND state <> 'released'"
        " RETURNING run_id, tenant_id, days",
        list(run_ids))
    return [Released(r["run_id"], r["tenant_id"], list(r["days"])) for r in rows]


async def add_held_back(conn: Conn, *, counts: Mapping[int, int]) -> None:
    """Count geo offers held back, per reserving run."""
    if counts:
        await conn.execute(
            "UPDATE cap_reservations c SET held_back = c.held_back + x.n"
            " FROM unnest($1::bigint[], $2::int[]) AS x(run_id, n) WHERE c.run_id = x.run_id",
            list(counts), list(counts.values()))


async def reservation_counts(
    conn: Conn, *, tenant_id: int, run_ids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """Per reserved run: recipients reserved, and geo offers its reservations held back."""
    rows = await conn.fetch(
        "SELECT run_id, reserved, held_back FROM cap_reservations"
        " WHERE tenant_id = $1 AND run_id = ANY($2::bigint[])",
        tenant_id, list(run_ids))
    return {r["run_id"]: (r["reserved"], r["held_back"]) for r in rows}

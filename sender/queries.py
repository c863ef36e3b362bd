"""Read queries on the message log: a message's history, counts per state, what was delivered.

They change nothing; the state moves are in ``sender.repo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from hexcast.core.db import Conn

__all__ = [
    "client_refs_by_provider_id", "decisions", "delivered_since", "message_history", "state_counts",
]


async def client_refs_by_provider_id(
    conn: Conn, *, provider_message_ids: Sequence[str]
) -> dict[str, str]:
    """Our client reference of each known provider message id (unknown ids are left out)."""
    rows = await conn.fetch(
        "SELECT provider_message_id, client_ref FROM messages"
        " WHERE provider_message_id = ANY($1::text[]) AND client_ref IS NOT NULL",
        list(provider_message_ids),
    )
    return {r["provider_message_id"]: r["client_ref"] for r in rows}


# Both audit tables draw their ids from one sequence, so their rows merge in order.
_HISTORY = """
SELECT from_state::text, to_state::text, actor, reason, at FROM (
    SELECT id, from_state, to_state, actor, reason, at FROM message_events WHERE message_id = $1
    UNION ALL
    SELECT id, from_state, to_state, actor, reason, at FROM message_statement_events
    WHERE span @> $1::bigint AND $1 = ANY(message_ids)
) e ORDER BY id
"""


async def message_history(
    conn: Conn, *, tenant_id: int, message_key: str
) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    """A tenant's message and its events, oldest first."""
    msg = await conn.fetchrow(
        "SELECT id, message_key, lane::text, state::text, reason, phone, body, provider,"
        " client_ref, provider_message_id, attempts, created_at, sent_at, delivered_at"
        " FROM messages WHERE tenant_id = $1 AND message_key = $2",
        tenant_id, message_key,
    )
    if msg is None:
        return None, []
    events = await conn.fetch(_HISTORY, msg["id"])
    return msg, list(events)


async def state_counts(conn: Conn, *, tenant_id: int) -> dict[str, int]:
    """How many of a tenant's messages are in each state."""
    rows = await conn.fetch(
        "SELECT state::text, count(*) AS n FROM messages WHERE tenant_id = $1 GROUP BY 1",
        tenant_id,
    )
    return {r["state"]: r["n"] for r in rows}


async def delivered_since(
    conn: Conn, *, tenant_id: int, after_id: int, limit: int = 50
) -> list[asyncpg.Record]:
    """A tenant's delivered messages with id above ``after_id``, oldest first."""
    return list(await conn.fetch(
        "SELECT id, phone, body, delivered_at FROM messages"
        " WHERE tenant_id = $1 AND state = 'delivered' AND id > $2 ORDER BY id LIMIT $3",
        tenant_id, after_id, limit,
    ))


async def decisions(
    conn: Conn, *, tenant_id: int, since: datetime, until: datetime
) -> list[tuple[str, str, str | None, datetime]]:
    """(phone, state, reason, created) of a tenant's messages created in [since, until]."""
    rows = await conn.fetch(
        "SELECT phone, state::text, reason, created_at FROM messages"
        " WHERE tenant_id = $1 AND created_at BETWEEN $2 AND $3", tenant_id, since, until)
    return [(r["phone"], r["state"], r["reason"], r["created_at"]) for r in rows]

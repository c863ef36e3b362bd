"""Read queries of the tenant's message API: one message, or a page of them, each with the
provider's last raw status and code and its whole history. Reads only; tenant-scoped.

A page is keyset-paginated by message id (``after_id``), so each page is an index range read
whatever the depth: by client reference (its partial index, migration 0019), by phone
(``messages_tenant_phone``), by campaign run (``messages_campaign_run``, with the id since
0019) or by creation time (the tenant's ``(tenant_id, id)`` index, filtered: ids follow
creation, but no index holds ``created_at``, which would cost every bulk message one more
entry on its insert and its acceptance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hexcast.core.db import Conn

__all__ = ["MessageFilter", "histories", "list_messages", "one_message"]

# The provider's own last word on the message (the part heard from last): its raw status and
# status or error code, kept by ``sender.settle`` per part (migration 0012). Receipts name a
# message by our reference or by the provider's id.
_COLS = """
m.id, m.message_key, m.lane::text AS lane, m.state::text AS state, m.reason, m.phone, m.body,
m.client_reference, m.user_id, m.campaign_run_id, m.provider, m.provider_message_id,
m.attempts, m.segments, m.created_at, m.updated_at, m.not_before, m.expires_at, m.sent_at,
m.delivered_at, r.status AS provider_status, r.code AS provider_code
FROM messages m LEFT JOIN LATERAL (
    SELECT pr.status, pr.code FROM provider_receipts pr
    WHERE m.provider IS NOT NULL AND pr.provider = m.provider
      AND pr.ref IN (m.message_key, m.provider_message_id)
    ORDER BY pr.received_at DESC, pr.part DESC LIMIT 1
) r ON true
"""

# Both audit tables draw their ids from one sequence, so their rows merge in order; a
# statement's row is found by its id span (GiST), one probe per message.
_HISTORIES = """
SELECT message_id, from_state::text, to_state::text, actor, reason, at FROM (
    SELECT e.id, e.message_id, e.from_state, e.to_state, e.actor, e.reason, e.at
    FROM message_events e WHERE e.message_id = ANY($1::bigint[])
    UNION ALL
    SELECT s.id, q.mid, s.from_state, s.to_state, s.actor, s.reason, s.at
    FROM unnest($1::bigint[]) AS q(mid)
    JOIN message_statement_events s ON s.span @> q.mid AND q.mid = ANY(s.message_ids)
) e ORDER BY message_id, id
"""


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Which of a tenant's messages a page lists (every given condition holds)."""

    client_reference: str | None = None
    phone: str | None = None
    campaign_run_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


async def one_message(conn: Conn, *, tenant_id: int, message_key: str) -> asyncpg.Record | None:
    """A tenant's message by its key (None for another tenant's or an unknown key)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLS} WHERE m.tenant_id = $1 AND m.message_key = $2", tenant_id, message_key)
    return row


# Each condition is fixed SQL with its own parameter: nothing the client sends is interpolated.
_CONDITIONS = (
    ("client_reference", "m.client_reference = ${}"),
    ("phone", "m.phone = ${}"),
    ("campaign_run_id", "m.campaign_run_id = ${}"),
    ("since", "m.created_at >= ${}"),
    ("until", "m.created_at < ${}"),
)


async def list_messages(
    conn: Conn, *, tenant_id: int, where: MessageFilter, after_id: int, limit: int
) -> list[asyncpg.Record]:
    """A page of the tenant's messages matching ``where``, by id, after ``after_id``."""
    args: list[object] = [tenant_id, after_id, limit]
    sql = [f"SELECT {_COLS} WHERE m.tenant_id = $1 AND m.id > $2"]
    for name, condition in _CONDITIONS:
        value = getattr(where, name)
        if value is not None:
            args.append(value)
            sql.append("AND " + condition.format(len(args)))
    sql.append("ORDER BY m.id LIMIT $3")
    return list(await conn.fetch(" ".join(sql), *args))


async def histories(conn: Conn, *, ids: Sequence[int]) -> dict[int, list[asyncpg.Record]]:
    """Each message's events, oldest first (from_state, to_state, actor, reason, at)."""
    found: dict[int, list[asyncpg.Record]] = {i: [] for i in ids}
    if ids:
        for row in await conn.fetch(_HISTORIES, list(ids)):
            found[row["message_id"]].append(row)
    return found

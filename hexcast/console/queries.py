"""The console's own reads: small tables and index range reads only, never a scan of
``messages`` (millions of rows). Tenant-scoped: ``tenant_id`` None is the operator's view
across tenants. Plain SQL, keyword-only arguments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from hexcast.core.db import Conn

__all__ = [
    "BACKLOG_CAP",
    "lane_backlogs",
    "message_tenant",
    "recent_campaigns",
    "run_forecasts",
    "settled_curve",
    "tenant_ids",
    "tenants",
    "unfinished_runs",
    "unknown_messages",
    "waves",
]

Row = asyncpg.Record

BACKLOG_CAP = 10_000
"""Waiting messages counted per lane at most (an index range of the oldest ones): past it the
console says "10,000+" and the consumer lag from Prometheus tells the rest."""

# Per lane: the oldest BACKLOG_CAP + 1 waiting rows (queued or sending) by the lane's partial
# index, counted (those of the tenant, if one is given) with the oldest one's age.
_BACKLOGS = """
SELECT l.lane, s.n, s.oldest, s.scanned > $3 AS more
FROM unnest($1::text[]) AS l(lane) CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE $2::bigint IS NULL OR p.tenant_id = $2) AS n,
        min(p.created_at) FILTER (WHERE $2::bigint IS NULL OR p.tenant_id = $2) AS oldest,
        count(*) AS scanned
    FROM (SELECT m.tenant_id, m.created_at FROM messages m
          WHERE m.lane = l.lane::message_lane AND m.pending ORDER BY m.id LIMIT $3 + 1) AS p
) AS s
"""


async def lane_backlogs(conn: Conn, *, lanes: Sequence[str], tenant_id: int | None) -> list[Row]:
    """(lane, n, oldest, more) per lane: messages waiting for a sender among the lane's oldest
    :data:`BACKLOG_CAP` (``more``: the lane has more waiting than that)."""
    return list(await conn.fetch(_BACKLOGS, list(lanes), tenant_id, BACKLOG_CAP))


# Unfinished runs (its partial index) with their campaign, how many messages their plan has
# (the forecast's waves), how many are released and how many settled (the runs' tallies).
_UNFINISHED = """
SELECT r.id, r.campaign_id, r.tenant_id, r.state, r.first_fire_at, c.name AS campaign_name,
    t.name AS tenant_name,
    COALESCE((SELECT sum((w ->> 'messages')::bigint) FROM jsonb_array_elements(
        CASE WHEN jsonb_typeof(r.forecast -> 'waves') = 'array' THEN r.forecast -> 'waves'
             ELSE '[]'::jsonb END) AS w), 0)::bigint AS planned,
    COALESCE((SELECT sum(cw.released) FROM campaign_waves cw WHERE cw.run_id = r.id), 0)::bigint
        AS released,
    COALESCE((SELECT sum(x.settled) FROM campaign_run_tallies x WHERE x.run_id = r.id), 0)::bigint
        AS settled
FROM campaign_runs r JOIN campaigns c ON c.id = r.campaign_id JOIN tenants t ON t.id = r.tenant_id
WHERE r.finished_at IS NULL AND ($1::bigint IS NULL OR r.tenant_id = $1)
ORDER BY r.id DESC LIMIT $2
"""


async def unfinished_runs(conn: Conn, *, tenant_id: int | None, limit: int = 50) -> list[Row]:
    """Runs not finished yet (running, paused, cancelled and still settling), newest first."""
    return list(await conn.fetch(_UNFINISHED, tenant_id, limit))


async def recent_campaigns(conn: Conn, *, tenant_id: int | None, limit: int = 10) -> list[Row]:
    return list(await conn.fetch(
        "SELECT c.id, c.name, c.state, c.tenant_id, t.name AS tenant_name, c.created_at"
        " FROM campaigns c JOIN tenants t ON t.id = c.tenant_id"
        " WHERE $1::bigint IS NULL OR c.tenant_id = $1 ORDER BY c.id DESC LIMIT $2",
        tenant_id, limit))


async def tenants(conn: Conn, *, limit: int = 500) -> list[Row]:
    """(id, name) of the tenants, by name: the operator's filter."""
    return list(await conn.fetch("SELECT id, name FROM tenants ORDER BY name, id LIMIT $1", limit))


async def tenant_ids(conn: Conn, *, limit: int = 500) -> list[int]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM tenants ORDER BY id LIMIT $1", limit)]


async def message_tenant(conn: Conn, *, message_key: str) -> int | None:
    """The tenant of the message ``message_key`` (its unique index), if there is one."""
    found: int | None = await conn.fetchval(
        "SELECT tenant_id FROM messages WHERE message_key = $1", message_key)
    return found


# Per tenant, its unknown messages by its (tenant, state) index: never a scan of messages
# (``sender.unknown.unknown_messages``, the admin API's list, filters every tenant's by state).
_UNKNOWN = """
SELECT u.id, u.message_key, u.tenant_id, t.name AS tenant_name, u.phone, u.provider, u.reason,
    u.updated_at
FROM tenants t CROSS JOIN LATERAL (
    SELECT m.id, m.message_key, m.tenant_id, m.phone, m.provider, m.reason, m.updated_at
    FROM messages m WHERE m.tenant_id = t.id AND m.state = 'unknown'
    ORDER BY m.updated_at, m.id LIMIT $2
) AS u
WHERE $1::bigint IS NULL OR t.id = $1
ORDER BY u.updated_at, u.id LIMIT $2
"""


async def unknown_messages(conn: Conn, *, tenant_id: int | None, limit: int) -> list[Row]:
    """The oldest ``unknown`` messages (of ``tenant_id``, or of every tenant), with why."""
    return list(await conn.fetch(_UNKNOWN, tenant_id, limit))


async def run_forecasts(conn: Conn, *, run_ids: Sequence[int]) -> dict[int, Any]:
    """Each run's plan when it was created: ``{"rate_per_s", "waves": [...]}``."""
    rows = await conn.fetch("SELECT id, forecast FROM campaign_runs WHERE id = ANY($1::bigint[])",
                            list(run_ids))
    return {r["id"]: r["forecast"] for r in rows}


async def settled_curve(conn: Conn, *, run_id: int, limit: int = 2000) -> list[Row]:
    """(at, settled so far) of an unfinished run, from its tallies (folded past 500 rows)."""
    return list(await conn.fetch(
        "SELECT at, sum(settled) OVER (ORDER BY at, settled)::bigint AS settled"
        " FROM campaign_run_tallies WHERE run_id = $1 ORDER BY at LIMIT $2", run_id, limit))


async def waves(conn: Conn, *, run_ids: Sequence[int]) -> list[Row]:
    """The runs' waves (one per zone), with when each one's release started and ended."""
    return list(await conn.fetch(
        "SELECT id, run_id, time_zone, fire_at, deadline_at, state, released, held_out, expired,"
        " started_at, finished_at FROM campaign_waves WHERE run_id = ANY($1::bigint[])"
        " ORDER BY fire_at, id", list(run_ids)))

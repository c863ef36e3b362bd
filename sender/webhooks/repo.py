"""Tenant webhook endpoints and their attempts, replays (plain SQL); the worker's side is in
:mod:`sender.webhooks.queue`. Every function takes the tenant, so another tenant's endpoint is
never found (the route answers 404)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from hexcast.core.db import Conn

__all__ = ["ENDPOINT_COLUMNS", "ROTATION_OVERLAP_S", "attempts", "create_endpoint",
           "delete_endpoint", "get_endpoint", "list_endpoints", "replay", "rotate_secret",
           "update_endpoint"]

ROTATION_OVERLAP_S = 86_400.0
"""How long the previous secret still signs after a rotation (24 h)."""

ENDPOINT_COLUMNS = ("id, url, description, event_types, batch_size, enabled, disabled_reason,"
                    " CASE WHEN old_secret_until > now() THEN old_secret_until END"
                    " AS old_secret_until, created_at, updated_at")
_EDITABLE = ("url", "event_types", "description", "batch_size", "enabled")


async def create_endpoint(conn: Conn, *, tenant_id: int, url: str, event_types: list[str],
                          description: str, batch_size: int, secret: str) -> asyncpg.Record:
    """A new enabled endpoint; returns its public columns and the secret."""
    row = await conn.fetchrow(
        "INSERT INTO webhook_endpoints (tenant_id, url, event_types, description, batch_size,"
        f" secret) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ENDPOINT_COLUMNS}, secret",
        tenant_id, url, event_types, description, batch_size, secret)
    if row is None:  # pragma: no cover - INSERT … RETURNING always answers a row
        raise RuntimeError("insert returned nothing")
    return row


async def list_endpoints(conn: Conn, *, tenant_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY id",
        tenant_id))


async def get_endpoint(conn: Conn, *, tenant_id: int, endpoint_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
        tenant_id, endpoint_id)


async def update_endpoint(conn: Conn, *, tenant_id: int, endpoint_id: int,
                          changes: Mapping[str, Any]) -> asyncpg.Record | None:
    """Apply ``changes`` (editable columns only); enabling clears the reason and the failure
    clock, so a re-enabled endpoint gets a fresh five days."""
    names = [n for n in _EDITABLE if n in changes]
    sets = [f"{n} = ${i}" for i, n in enumerate(names, start=3)]
    if changes.get("enabled") is True:
        sets += ["disabled_reason = NULL", "failing_since = NULL"]
    sets.append("updated_at = now()")
    async with conn.transaction():
        row = await conn.fetchrow(
            f"UPDATE webhook_endpoints SET {', '.join(sets)} WHERE tenant_id = $1 AND id = $2"
            f" RETURNING {ENDPOINT_COLUMNS}",
            tenant_id, endpoint_id, *(changes[n] for n in names))
        if row is not None and "enabled" in changes:
            await _park(conn, endpoint_id=endpoint_id, parked=not changes["enabled"])
    return row


async def _park(conn: Conn, *, endpoint_id: int, parked: bool) -> None:
    """Park a disabled endpoint's pending deliveries at ``'infinity'`` (out of the worker's
    way), or make them due now when it is enabled again."""
    await conn.execute(
        "UPDATE webhook_deliveries SET next_at = CASE WHEN $2 THEN 'infinity'::timestamptz"
        " ELSE clock_timestamp() END"
        " WHERE endpoint_id = $1 AND state = 'pending'"
        " AND (next_at = 'infinity') IS DISTINCT FROM $2",
        endpoint_id, parked)


async def delete_endpoint(conn: Conn, *, tenant_id: int, endpoint_id: int) -> bool:
    """Delete the endpoint with its deliveries and attempt log."""
    row = await conn.fetchrow(
        "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 RETURNING id",
        tenant_id, endpoint_id)
    return row is not None


async def rotate_secret(conn: Conn, *, tenant_id: int, endpoint_id: int, secret: str,
                        overlap_s: float = ROTATION_OVERLAP_S) -> asyncpg.Record | None:
    """``secret`` signs from now on; the current one keeps signing for ``overlap_s``."""
    return await conn.fetchrow(
        "UPDATE webhook_endpoints SET old_secret = secret, secret = $3, updated_at = now(),"
        " old_secret_until = now() + make_interval(secs => $4)"
        f" WHERE tenant_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}, secret",
        tenant_id, endpoint_id, secret, overlap_s)


async def attempts(conn: Conn, *, tenant_id: int, endpoint_id: int, before: int | None,
                   limit: int) -> list[asyncpg.Record]:
    """The endpoint's attempts, newest first, with ids below ``before`` (keyset)."""
    return list(await conn.fetch(
        "SELECT a.id, a.webhook_id, a.event_ids, a.at, a.status, a.error, a.duration_ms"
        " FROM webhook_attempts a JOIN webhook_endpoints e ON e.id = a.endpoint_id"
        " WHERE e.tenant_id = $1 AND a.endpoint_id = $2 AND ($3::bigint IS NULL OR a.id < $3)"
        " ORDER BY a.id DESC LIMIT $4",
        tenant_id, endpoint_id, before, limit))


_REPLAY = """
WITH e AS (
    SELECT id, tenant_id, event_types FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2
), events AS (
    SELECT o.id, o.subject, o.sequence, o.created_at FROM webhook_outbox o JOIN e
        ON o.tenant_id = e.tenant_id AND o.type = ANY(e.event_types)
    WHERE o.created_at >= $3 AND o.created_at < $4
    UNION
    SELECT o.id, o.subject, o.sequence, o.created_at FROM webhook_deliveries d
        JOIN e ON d.endpoint_id = e.id JOIN webhook_outbox o ON o.id = d.outbox_id
    WHERE d.event_at >= $3 AND d.event_at < $4
)
INSERT INTO webhook_deliveries (endpoint_id, outbox_id, subject, sequence, event_at)
SELECT $2, id, subject, sequence, created_at FROM events ORDER BY id
ON CONFLICT (endpoint_id, outbox_id) DO UPDATE SET state = 'pending', attempts = 0,
    next_at = clock_timestamp(), lease_until = NULL, last_error = NULL
RETURNING id
"""


async def replay(conn: Conn, *, tenant_id: int, endpoint_id: int, since: datetime,
                 until: datetime) -> int:
    """Queue again the endpoint's events from ``since`` (included) to ``until`` (excluded):
    those it was sent and those of its types it never had; returns how many."""
    return len(await conn.fetch(_REPLAY, tenant_id, endpoint_id, since, until))

"""The webhook worker's SQL: outbox rows fanned out to per-endpoint deliveries, due deliveries
claimed under a lease, outcomes recorded, endpoints disabled.

Claims take rows ``FOR UPDATE SKIP LOCKED`` and set ``lease_until``: two workers never hold
the same delivery, and the deliveries of a worker killed mid-request become due again when
the lease runs out (at least once: the receiver dedupes by ``webhook-id``). A message's later
event waits while an earlier one to the same endpoint is pending, so an endpoint never gets
``message.delivered`` before that message's ``message.accepted``.

Claims walk the pending deliveries in ``(next_at, id)`` order and stop at the limit, so what
a claim reads is what it takes plus what waits in front: deliveries in flight, and later
events of messages whose earlier event is in flight. To keep it so, a later event is never
due before an earlier pending one of its message (fan-out and retry carry ``next_at``
forward), pending deliveries of a disabled endpoint are parked at ``'infinity'``, and the
blocking test is a scalar subquery (one index probe per row read): planned as an anti-join
on a young table's statistics it cost O(backlog²), 40 s a claim at 40,000 pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from hexcast.core.db import Conn

__all__ = ["backlog", "claim", "disable", "fan_out", "failing_endpoints", "log_attempt",
           "mark_failing", "retry", "succeeded"]

_FAN_OUT = """
WITH o AS (
    SELECT id, tenant_id, type, subject, sequence, created_at, payload FROM webhook_outbox
    WHERE NOT fanned_out ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
), ins AS (
    INSERT INTO webhook_deliveries (endpoint_id, outbox_id, subject, sequence, event_at, next_at)
    SELECT e.id, o.id, o.subject, o.sequence, o.created_at, GREATEST(clock_timestamp(), (
        SELECT max(p.next_at) FROM webhook_deliveries p
        WHERE p.endpoint_id = e.id AND p.subject = o.subject AND p.state = 'pending'
          AND p.sequence < o.sequence))
    FROM o JOIN webhook_endpoints e
        ON e.tenant_id = o.tenant_id AND e.enabled
       AND (o.type = ANY(e.event_types) OR (o.type = 'endpoint.disabled'
            AND e.id::text IS DISTINCT FROM o.payload -> 'data' ->> 'endpoint_id'))
    ORDER BY o.id
    ON CONFLICT (endpoint_id, outbox_id) DO NOTHING
)
UPDATE webhook_outbox SET fanned_out = true WHERE id = ANY(ARRAY(SELECT id FROM o))
"""


async def fan_out(conn: Conn, *, limit: int) -> int:
    """One delivery per (outbox event, enabled endpoint subscribed to it) for up to ``limit``
    events; returns how many events were fanned out."""
    status = await conn.execute(_FAN_OUT, limit)
    return int(status.rsplit(" ", 1)[-1])


_CLAIM = """
WITH c AS (
    SELECT d.id FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
    WHERE d.state = 'pending' AND d.next_at <= clock_timestamp()
      AND (d.lease_until IS NULL OR d.lease_until < clock_timestamp())
      AND (d.subject IS NULL OR d.sequence <= (
            SELECT min(p.sequence) FROM webhook_deliveries p
            WHERE p.endpoint_id = d.endpoint_id AND p.subject = d.subject AND p.state = 'pending'))
    ORDER BY d.next_at, d.id LIMIT $1
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d SET lease_until = now() + make_interval(secs => $2)
FROM webhook_outbox o, webhook_endpoints e
WHERE d.id = ANY(ARRAY(SELECT id FROM c)) AND o.id = d.outbox_id AND e.id = d.endpoint_id
RETURNING d.id, d.endpoint_id, d.attempts, d.lease_until, o.event_id, o.payload, o.id AS outbox_id,
    e.tenant_id, e.url, e.batch_size, e.secret,
    CASE WHEN e.old_secret_until > clock_timestamp() THEN e.old_secret END AS old_secret
"""


async def claim(conn: Conn, *, limit: int, lease_s: float) -> list[asyncpg.Record]:
    """Up to ``limit`` due deliveries, leased for ``lease_s``, oldest event first. Their common
    ``lease_until`` is the claim's token: an outcome is recorded only on rows still so leased
    (not replayed, nor claimed again by another worker after the lease ran out)."""
    rows = await conn.fetch(_CLAIM, limit, lease_s)
    return sorted(rows, key=lambda r: r["outbox_id"])


_SUCCEEDED = """
WITH attempt AS (
    INSERT INTO webhook_attempts (endpoint_id, webhook_id, event_ids, status, duration_ms)
    VALUES ($1, $2, $3, $4, $5)
), done AS (
    UPDATE webhook_deliveries SET state = 'delivered', delivered_at = clock_timestamp(),
        attempts = attempts + 1, lease_until = NULL, last_error = NULL
    WHERE id = ANY($6::bigint[]) AND lease_until = $7
)
UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL
"""


async def succeeded(conn: Conn, *, endpoint_id: int, webhook_id: str, event_ids: Sequence[str],
                    status: int, duration_ms: float, ids: Sequence[int], lease: datetime) -> None:
    """A 2xx in one statement (the common case, one round trip): the attempt logged, the
    deliveries delivered, the endpoint's failure clock stopped."""
    await conn.execute(_SUCCEEDED, endpoint_id, webhook_id, list(event_ids), status, duration_ms,
                       list(ids), lease)


_RETRY = """
WITH r AS (
    UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = NULL, last_error = $3,
        state = CASE WHEN attempts + 1 >= cardinality($2::float8[]) THEN 'failed' ELSE state END,
        next_at = CASE WHEN next_at = 'infinity' THEN next_at  -- parked meanwhile: disabled
            ELSE clock_timestamp() + make_interval(secs => GREATEST($4,
                COALESCE(($2::float8[])[attempts + 2], 0))) END
    WHERE id = ANY($1::bigint[]) AND lease_until = $5
    RETURNING endpoint_id, subject, sequence, state, next_at
), later AS (
    UPDATE webhook_deliveries d SET next_at = r.next_at FROM r
    WHERE r.state = 'pending' AND d.endpoint_id = r.endpoint_id AND d.subject = r.subject
      AND d.state = 'pending' AND d.sequence > r.sequence AND d.next_at < r.next_at
)
SELECT state FROM r
"""


async def retry(conn: Conn, *, ids: Sequence[int], lease: datetime, schedule: Sequence[float],
                error: str, at_least_s: float = 0.0) -> int:
    """Count a failed attempt: due again after the schedule's next delay (at least
    ``at_least_s``: a Retry-After), or ``failed`` once the schedule is spent; returns how many
    have failed for good."""
    rows = await conn.fetch(_RETRY, list(ids), [max(0.0, s) for s in schedule], error,
                            at_least_s, lease)
    return sum(1 for r in rows if r["state"] == "failed")


async def log_attempt(conn: Conn, *, endpoint_id: int, webhook_id: str, event_ids: Sequence[str],
                      status: int | None, error: str | None, duration_ms: float) -> None:
    await conn.execute(
        "INSERT INTO webhook_attempts (endpoint_id, webhook_id, event_ids, status, error,"
        " duration_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        endpoint_id, webhook_id, list(event_ids), status, error, duration_ms)


async def mark_failing(conn: Conn, *, endpoint_id: int, ok: bool, disable_after_s: float) -> bool:
    """Start (or, when ``ok``, stop) the endpoint's failure clock; True when it has been failing
    for ``disable_after_s`` and must be disabled."""
    if ok:
        await conn.execute("UPDATE webhook_endpoints SET failing_since = NULL"
                           " WHERE id = $1 AND failing_since IS NOT NULL", endpoint_id)
        return False
    since_s = await conn.fetchval(
        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, clock_timestamp())"
        " WHERE id = $1 RETURNING extract(epoch FROM clock_timestamp() - failing_since)",
        endpoint_id)
    return since_s is not None and float(since_s) >= disable_after_s


_DISABLE = """
WITH e AS (
    UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now()
    WHERE id = $1 AND enabled RETURNING id, tenant_id, url
), parked AS (
    UPDATE webhook_deliveries d SET next_at = 'infinity' FROM e
    WHERE d.endpoint_id = e.id AND d.state = 'pending'
)
INSERT INTO webhook_outbox (tenant_id, type, payload)
SELECT tenant_id, 'endpoint.disabled', jsonb_build_object('type', 'endpoint.disabled',
    'timestamp', webhook_utc(clock_timestamp()),
    'data', jsonb_build_object('endpoint_id', id, 'url', url, 'reason', $2::text))
FROM e
RETURNING id
"""


async def disable(conn: Conn, *, endpoint_id: int, reason: str) -> bool:
    """Disable the endpoint and tell the tenant's other enabled endpoints
    (``endpoint.disabled``); False when it was disabled already."""
    return await conn.fetchrow(_DISABLE, endpoint_id, reason) is not None


async def backlog(conn: Conn) -> dict[int, int]:
    """Pending deliveries of each tenant with an endpoint, those parked for a disabled endpoint
    left out (the pending deliveries' index, and the endpoints: never the message log)."""
    rows = await conn.fetch(
        "SELECT e.tenant_id, count(d.id) AS n FROM webhook_endpoints e"
        " LEFT JOIN webhook_deliveries d ON d.endpoint_id = e.id AND d.state = 'pending'"
        " AND d.next_at < 'infinity' GROUP BY 1")
    return {int(r["tenant_id"]): int(r["n"]) for r in rows}


async def failing_endpoints(conn: Conn) -> dict[tuple[int, int], bool]:
    """(tenant, endpoint) → whether the enabled endpoint's failure clock runs, for every one."""
    rows = await conn.fetch(
        "SELECT tenant_id, id, enabled AND failing_since IS NOT NULL AS failing"
        " FROM webhook_endpoints")
    return {(int(r["tenant_id"]), int(r["id"])): bool(r["failing"]) for r in rows}

"""How long webhook events are kept: the outbox (what replay reads), the deliveries and the
attempt log older than ``webhook_retention_s`` are deleted in bounded batches, so a holiday
run's millions of events do not stay forever. An event with a delivery still pending is kept
whatever its age (an endpoint's last retries run 5 days after the event)."""

from __future__ import annotations

from typing import NamedTuple

from hexcast.core.db import Conn

__all__ = ["Pruned", "prune"]

_PRUNE_OUTBOX = """
WITH old AS (
    SELECT o.id FROM webhook_outbox o
    WHERE o.created_at < clock_timestamp() - make_interval(secs => $1) AND o.fanned_out
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                      WHERE d.outbox_id = o.id AND d.state = 'pending')
    ORDER BY o.created_at LIMIT $2
)
DELETE FROM webhook_outbox WHERE id = ANY(ARRAY(SELECT id FROM old))
"""

_PRUNE_ATTEMPTS = """
DELETE FROM webhook_attempts WHERE id = ANY(ARRAY(
    SELECT id FROM webhook_attempts
    WHERE at < clock_timestamp() - make_interval(secs => $1) ORDER BY at LIMIT $2))
"""


class Pruned(NamedTuple):
    events: int
    attempts: int


async def prune(conn: Conn, *, older_than_s: float, limit: int) -> Pruned:
    """Delete up to ``limit`` events (with their deliveries) and ``limit`` attempts older than
    ``older_than_s``; call again while it returns ``limit`` of either."""
    events = await conn.execute(_PRUNE_OUTBOX, older_than_s, limit)
    attempts = await conn.execute(_PRUNE_ATTEMPTS, older_than_s, limit)
    return Pruned(int(events.rsplit(" ", 1)[-1]), int(attempts.rsplit(" ", 1)[-1]))

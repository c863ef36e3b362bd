"""SQL of ``POST /v1/messages``: the tenant's templates, and the batch's rows stored at once.

The api stores a batch's messages itself, in one statement, before publishing them: so the
answer names each message's state, ``GET /v1/messages/{key}`` finds it at once, its
``client_reference`` is kept, and a message with ``send_at`` waits as ``deferred`` (released
by ``sender.deferred`` when due) instead of riding the topic. The sender then finds the rows
there (its enqueue dedupes on the key) and sends them by every rule: consent, opt-out, quiet
hours, caps, limits. A publish that fails after the insert leaves the rows ``queued``; the
sender's sweep sends them, and a retry with the same Idempotency-Key publishes them again.
"""

from __future__ import annotations

from collections.abc import Sequence

from hexcast.core.db import Conn
from sender import metrics
from sender.models import MessageState
from sender.submissions import Planned

__all__ = ["store_messages", "template_bodies"]


async def template_bodies(conn: Conn, *, tenant_id: int, ids: Sequence[int]) -> dict[int, str]:
    """The bodies of the tenant's templates among ``ids`` (another tenant's are left out)."""
    if not ids:
        return {}
    rows = await conn.fetch("SELECT id, body FROM templates WHERE tenant_id = $1 AND id = ANY($2)",
                            tenant_id, list(set(ids)))
    return {r["id"]: r["body"] for r in rows}


# New rows are queued (deferred until send_at when given), each with its event; a key already
# there (a retried request whose first try stored them) is left as it is.
_STORE = """
WITH ins AS (
    INSERT INTO messages (message_key, client_ref, tenant_id, lane, user_id, phone, body,
        expires_at, client_reference, state, not_before, reason)
    SELECT k, k, $1, l::message_lane, u, p, b, e, cr, s::message_state, nb, r
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
        $8::text[], $9::text[], $10::timestamptz[], $11::text[]) AS x(k, l, u, p, b, e, cr, s, nb, r)
    ON CONFLICT (message_key) DO NOTHING
    RETURNING id, message_key, state, reason
), ev AS (
    INSERT INTO message_events (message_id, from_state, to_state, actor, reason)
    SELECT id, NULL, state, 'api', COALESCE(reason, 'enqueued') FROM ins
)
SELECT message_key, state::text FROM ins
"""


async def store_messages(conn: Conn, *, tenant_id: int, planned: Sequence[Planned]
                         ) -> dict[str, MessageState]:
    """Insert the batch's messages (``ON CONFLICT DO NOTHING`` on the key): key → its state."""
    deferred = [p.send_at is not None for p in planned]
    rows = await conn.fetch(
        _STORE, tenant_id,
        [p.request.message_key for p in planned], [p.lane.value for p in planned],
        [p.request.user_id for p in planned], [p.request.phone for p in planned],
        [p.request.body for p in planned], [p.request.expires_at for p in planned],
        [p.client_reference for p in planned],
        [MessageState.DEFERRED.value if d else MessageState.QUEUED.value for d in deferred],
        [p.send_at for p in planned],
        [f"send_at until {p.send_at.isoformat()}" if p.send_at else None for p in planned],
    )
    states = {r["message_key"]: MessageState(r["state"]) for r in rows}
    _count(tenant_id, planned, states)
    missing = [p.request.message_key for p in planned if p.request.message_key not in states]
    if missing:
        found = await conn.fetch(
            "SELECT message_key, state::text FROM messages WHERE tenant_id = $1"
            " AND message_key = ANY($2::text[])", tenant_id, missing)
        states.update({r["message_key"]: MessageState(r["state"]) for r in found})
    return states


def _count(tenant_id: int, planned: Sequence[Planned], stored: dict[str, MessageState]) -> None:
    """The messages stored now (``stored``: key → state), in the sender's metrics."""
    lanes = {p.request.message_key: p.lane for p in planned}
    for state in set(stored.values()):
        mine = [k for k, s in stored.items() if s is state]
        metrics.count_moves(state, ((tenant_id, lanes[k], None) for k in mine))
        if state is MessageState.DEFERRED:
            metrics.count_deferred("send_at", ((tenant_id, lanes[k], None) for k in mine))

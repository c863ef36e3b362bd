"""Release deferred messages (quiet hours) whose time has come back to their lane.

:func:`release_due` moves due ``deferred`` rows to ``queued`` (conditionally: two releasers
never both take a row) and republishes them to ``send.<lane>``. The sender checks them again
(opt-out, consent, quiet hours, TTL) before sending. If the publish fails after the move, the
rows stay ``queued`` and the sender's sweep sends them: nothing is lost.
The scheduler process calls it in its loop; ``hexcast deferred release`` runs it standalone.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from hexcast.core.bus import Bus
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from sender import metrics, repo
from sender.models import MAX_CHUNK, Lane, MessageState, SendBatch, SendRequest

__all__ = ["release_due"]

log = get_logger("hexcast.sender")


def _request(row: repo.MessageRow) -> SendRequest:
    return SendRequest(
        message_key=row.message_key, tenant_id=row.tenant_id, user_id=row.user_id,
        phone=row.phone, body=row.body, promotion_id=row.promotion_id,
        campaign_run_id=row.campaign_run_id, expires_at=row.expires_at,
    )


async def release_due(pool: asyncpg.Pool, bus: Bus, settings: Settings, *, now: datetime) -> int:
    """Requeue and republish every deferred message due at ``now``; returns how many."""
    released = 0
    while True:
        async with pool.acquire() as conn:
            rows = await repo.due_deferred(conn, now=now, limit=MAX_CHUNK)
            moved = await repo.transition(
                conn, ids=[r.id for r in rows], to=MessageState.QUEUED,
                from_states=[MessageState.DEFERRED], reason="deferral over", actor="release",
            )
        mine = [r for r in rows if r.id in moved]
        metrics.count_moves(MessageState.QUEUED, ((r.tenant_id, r.lane, moved[r.id]) for r in mine))
        for lane in Lane:
            items = [_request(r) for r in mine if r.lane is lane]
            if items:
                record = SendBatch(lane=lane, items=items, created_at=now)
                await bus.publish(lane.topic, f"released-{items[0].message_key}", record.encode())
        released += len(mine)
        if len(rows) < MAX_CHUNK:
            log.info("deferred_released", count=released, settings_prefix=settings.topic_prefix)
            return released

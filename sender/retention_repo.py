"""SQL of the message log's retention (migration 0029): where the old messages end, and one
batch of them deleted with the rows keyed by them.

A batch is one statement over at most ``limit`` messages, locked ``FOR UPDATE SKIP LOCKED`` (a
row a sender or a receipt holds is left for the next run) and found by walking the primary key
from a cursor, so no statement holds many locks or reads the table twice. Deleting messages
deletes their ``message_events`` and ``message_statement_events`` (the trigger of migrations
0008 and 0011); this statement deletes in the same transaction their provider parts, their
provider receipts (named by message key, provider id or part id) and their short links (whose
clicks go by ``ON DELETE CASCADE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hexcast.core.db import Conn, one
from sender.models import MessageState

__all__ = ["FINAL_STATES", "Batch", "delete_batch", "last_old_id"]

FINAL_STATES: tuple[MessageState, ...] = (
    MessageState.DELIVERED, MessageState.FAILED, MessageState.EXPIRED, MessageState.SUPPRESSED,
)
"""What retention deletes: states a message never leaves. queued, sending, accepted (a receipt
may still come), deferred and unknown (not settled) are kept whatever their age."""

# OFFSET 0 keeps max() from walking the primary key backwards through every recent message:
# the BRIN index on created_at reads only the old block ranges.
_LAST_OLD_ID = """
SELECT max(id) FROM (SELECT id FROM messages WHERE created_at < $1 OFFSET 0) old
"""

_DELETE_BATCH = """
WITH doomed AS (
    SELECT id FROM messages
    WHERE id > $1 AND id <= $2 AND created_at < $3 AND updated_at < $3
      AND state = ANY($4::message_state[])
    ORDER BY id LIMIT $5
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM messages m WHERE m.id = ANY(ARRAY(SELECT id FROM doomed))
    RETURNING m.id, m.message_key, m.provider, m.provider_message_id
), parts AS (
    DELETE FROM provider_parts p USING gone g WHERE p.message_key = g.message_key
    RETURNING p.provider, p.part_id
), receipts AS (
    DELETE FROM provider_receipts r WHERE (r.provider, r.ref) IN (
        SELECT provider, message_key FROM gone WHERE provider IS NOT NULL
        UNION ALL SELECT provider, provider_message_id FROM gone
            WHERE provider IS NOT NULL AND provider_message_id IS NOT NULL
        UNION ALL SELECT provider, part_id FROM parts)
    RETURNING 1
), links AS (
    DELETE FROM short_links l USING gone g WHERE l.message_key = g.message_key RETURNING 1
)
SELECT (SELECT max(id) FROM doomed) AS last_id, (SELECT count(*) FROM gone) AS messages,
       (SELECT count(*) FROM parts) + (SELECT count(*) FROM receipts)
       + (SELECT count(*) FROM links) AS dependants
"""


@dataclass(frozen=True, slots=True)
class Batch:
    """What one statement deleted: messages, rows keyed by them, and the highest id it took
    (None: nothing left to take below the bound)."""

    last_id: int | None
    messages: int
    dependants: int


async def last_old_id(conn: Conn, *, before: datetime) -> int | None:
    """The highest id of a message created before ``before`` (None: there is none)."""
    value = await conn.fetchval(_LAST_OLD_ID, before)
    return None if value is None else int(value)


async def delete_batch(
    conn: Conn, *, after_id: int, upto_id: int, before: datetime, limit: int
) -> Batch:
    """Delete up to ``limit`` final messages with ``after_id < id <= upto_id`` created and last
    changed before ``before``, lowest ids first, with their parts, receipts and links."""
    row = one(await conn.fetchrow(_DELETE_BATCH, after_id, upto_id, before,
                                  [s.value for s in FINAL_STATES], limit))
    last = row["last_id"]
    return Batch(None if last is None else int(last), int(row["messages"]), int(row["dependants"]))

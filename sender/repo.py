"""SQL of the message log's state moves (reads are in ``sender.queries``, the consent rule in
``sender.consent``). Every state change is audited in the same statement: the three moves
of every send (enqueue, claim, acceptance) append one ``message_statement_events`` row with
the ids they moved, the others one ``message_events`` row per message (migration 0011).

The state moves find their rows by id (or client reference) and check the state as text
(``m.state::text = 'queued'``): compared as the enum, the planner may fetch the rows through
the partial and (tenant, state) indexes instead, whose dead entries pile up under a bulk run
until vacuum, so each 1,000-row statement grew with the table (2.4× slower at 200,000 rows,
see BENCHMARKS.md). As text, the primary or unique key is the only way in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from hexcast.core.db import Conn
from sender.consent import NO_CONSENT, OPTED_OUT
from sender.models import Lane, MessageState, SendRequest

__all__ = [
    "MessageRow",
    "PendingPage",
    "Screened",
    "accept_messages",
    "apply_receipts",
    "claim_for_sending",
    "defer",
    "due_deferred",
    "enqueue",
    "mark_accepted",
    "requeue_failed",
    "stale_rows",
    "transition",
]

_COLS = (
    "id, message_key, tenant_id, lane::text, state::text, phone, body, client_ref, expires_at,"
    " attempts, provider, user_id, promotion_id, campaign_run_id, updated_at"
)


def _statement_event(*, rows: str, from_state: str, to_state: str, actor: str, reason: str) -> str:
    """A CTE appending one ``message_statement_events`` row for the ids of CTE ``rows`` (none
    when it is empty); the states are SQL ``message_state`` values, actor and reason text."""
    return f"""ev AS (
    INSERT INTO message_statement_events (message_ids, span, from_state, to_state, actor, reason)
    SELECT array_agg(id), int8range(min(id), max(id), '[]'), {from_state}::message_state,
        {to_state}::message_state, {actor}::text, {reason}::text
    FROM {rows} HAVING count(*) > 0
)"""


# Moves rows from any of $4 to $2 with reason $3, appending one event per moved row; answers
# each moved row's provider (for the metrics' labels).
_TRANSITION = """
WITH old AS (
    SELECT id, state FROM messages WHERE id = ANY($1::bigint[]) AND state::text = ANY($4::text[])
    FOR UPDATE
), upd AS (
    UPDATE messages m SET state = $2::message_state, reason = $3, updated_at = now(),
        attempts = m.attempts + $6::int, provider = COALESCE($7, m.provider)
    FROM old WHERE m.id = old.id
    RETURNING m.id, old.state AS from_state, m.provider
), ev AS (
    INSERT INTO message_events (message_id, from_state, to_state, actor, reason)
    SELECT id, from_state, $2::message_state, $5, $3 FROM upd
)
SELECT id AS message_id, provider FROM upd
"""

# `old` carries the new values, so the update joins it alone by key (joining the unnest
# again made a nested loop over both lists: quadratic in the batch size).
_ACCEPT = f"""
WITH old AS (
    SELECT m.id, r.provider_message_id, r.segs
    FROM unnest($1::bigint[], $2::text[], $4::int[]) AS r(id, provider_message_id, segs)
    JOIN messages m ON m.id = r.id WHERE m.state::text = 'sending'
    FOR UPDATE OF m
), upd AS (
    UPDATE messages m SET state = 'accepted', provider_message_id = old.provider_message_id,
        sent_at = now(), updated_at = now(), reason = NULL,
        segments = COALESCE(old.segs, m.segments)
    FROM old WHERE m.id = old.id
    RETURNING m.id, m.provider
), {_statement_event(rows="upd", from_state="'sending'", to_state="'accepted'", actor="$3",
                     reason="'provider accepted'")}
SELECT id AS message_id, provider FROM upd
"""

_PARTS = """
INSERT INTO provider_parts (provider, part_id, message_key, part, parts)
SELECT m.provider, x.part_id, m.message_key, x.part, x.parts
FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[]) AS x(id, part_id, part, parts)
JOIN messages m ON m.id = x.id
ON CONFLICT DO NOTHING
"""

_RECEIPTS = """
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS r(client_ref, status, error)
), old AS (
    SELECT m.id, m.state, r.status, r.error, m.updated_at AS moved_at
    FROM messages m JOIN r ON r.client_ref = m.message_key
    WHERE m.state::text = ANY($5::text[])
    FOR UPDATE OF m
), upd AS (
    UPDATE messages m SET state = old.status::message_state, reason = old.error,
        updated_at = now(),
        delivered_at = CASE WHEN old.status = 'delivered' THEN now() ELSE m.delivered_at END
    FROM old WHERE m.id = old.id
    RETURNING m.id, old.state AS from_state, m.state AS to_state, old.error, m.message_key,
        m.tenant_id, m.lane::text AS lane, m.promotion_id, m.campaign_run_id, m.user_id, m.phone,
        m.provider,
        -- submit → receipt; a receipt ahead of the acceptance's commit: since the claim
        extract(epoch FROM clock_timestamp() - COALESCE(m.sent_at, old.moved_at))::float8 AS receipt_s
), ins AS (
    INSERT INTO message_events (message_id, from_state, to_state, actor, reason)
    SELECT id, from_state, to_state, $4, COALESCE(error, 'delivery receipt') FROM upd
)
SELECT message_key, tenant_id, lane, to_state::text AS state, error, promotion_id,
    campaign_run_id, user_id, phone, provider, receipt_s FROM upd
"""

# queued → sending (+1 attempt, provider $2) for rows still allowed at this very statement.
_CLAIM = f"""
WITH old AS (
    SELECT m.id FROM messages m WHERE m.id = ANY($1::bigint[]) AND m.state::text = 'queued'
    AND (m.confirmation OR NOT ({OPTED_OUT} OR {NO_CONSENT}))
    FOR UPDATE OF m
), upd AS (
    UPDATE messages m SET state = 'sending', reason = $4, updated_at = now(),
        attempts = m.attempts + 1, provider = $2
    FROM old WHERE m.id = old.id
    RETURNING m.id
), {_statement_event(rows="upd", from_state="'queued'", to_state="'sending'", actor="$3",
                     reason="$4")}
SELECT id AS message_id FROM upd
"""

@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    message_key: str
    tenant_id: int
    lane: Lane
    state: MessageState
    phone: str
    body: str
    client_ref: str
    expires_at: datetime | None
    attempts: int
    provider: str | None = None
    user_id: str | None = None
    promotion_id: int | None = None
    campaign_run_id: int | None = None
    updated_at: datetime | None = None


_LANES = {lane.value: lane for lane in Lane}
_STATES = {state.value: state for state in MessageState}


def _row(r: asyncpg.Record) -> MessageRow:
    return MessageRow(
        id=r["id"], message_key=r["message_key"], tenant_id=r["tenant_id"], lane=_LANES[r["lane"]],
        state=_STATES[r["state"]], phone=r["phone"], body=r["body"],
        client_ref=r["client_ref"], expires_at=r["expires_at"], attempts=r["attempts"],
        provider=r["provider"], user_id=r["user_id"], promotion_id=r["promotion_id"],
        campaign_run_id=r["campaign_run_id"], updated_at=r["updated_at"],
    )


@dataclass(frozen=True, slots=True)
class Screened:
    """What the enqueue looked up for the rows it inserted, so the sender need not ask again:
    each (tenant, phone)'s profile time zone (None: the profile has none), the ids of those rows,
    and of those that were blocked then (opted out, or marketing without consent). The claim
    before the provider call checks opt-out and consent again; this only spares the common case
    a query."""

    zones: dict[tuple[int, str], str | None]
    ids: set[int]
    blocked: set[int]
    recipients: dict[tuple[int, str], int | None] = field(default_factory=dict)  # their ids


# Blocked at insert: the recipient row is joined once for the zone and the consent. Only what
# the caller does not know comes back (the id and the row's time), not the values it sent.
_ENQUEUE = f"""
WITH ins AS (
    INSERT INTO messages (message_key, tenant_id, lane, user_id, phone, body,
        promotion_id, campaign_run_id, expires_at, client_ref, confirmation)
    SELECT k, t, $9::message_lane, u, p, b, pr, cr, e, k, c
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
        $6::bigint[], $7::bigint[], $8::timestamptz[], $11::boolean[])
        AS x(k, t, u, p, b, pr, cr, e, c)
    ON CONFLICT (message_key) DO NOTHING
    RETURNING id, message_key, tenant_id, phone, lane, confirmation, updated_at
), {_statement_event(rows="ins", from_state="NULL", to_state="'queued'", actor="$10",
                     reason="'enqueued'")}
SELECT m.id, m.message_key, m.updated_at, r.time_zone AS profile_zone, r.id AS recipient_id,
    NOT m.confirmation AND ({OPTED_OUT} OR (m.lane::text NOT IN ('otp', 'transactional')
        AND NOT (r.consent_at IS NOT NULL AND r.opted_out_at IS NULL))) AS blocked
FROM ins m LEFT JOIN recipients r ON r.tenant_id = m.tenant_id AND r.phone = m.phone
"""


async def enqueue(
    conn: Conn, *, lane: Lane, items: Sequence[SendRequest], actor: str
) -> tuple[list[MessageRow], Screened]:
    """Insert new messages as ``queued`` (dedupe on the key); return every key's current row,
    and what was looked up for the new ones."""
    first: dict[str, SendRequest] = {}
    for item in items:
        first.setdefault(item.message_key, item)
    new = list(first.values())
    inserted = await conn.fetch(
        _ENQUEUE,
        list(first), [i.tenant_id for i in new], [i.user_id for i in new],
        [i.phone for i in new], [i.body for i in new], [i.promotion_id for i in new],
        [i.campaign_run_id for i in new], [i.expires_at for i in new], lane.value, actor,
        [i.confirmation for i in new],
    )
    rows = [_new_row(r["id"], first[r["message_key"]], lane, r["updated_at"]) for r in inserted]
    screened = Screened(zones={(r.tenant_id, r.phone): z["profile_zone"]
                               for r, z in zip(rows, inserted, strict=True)},
                        ids={r.id for r in rows},
                        blocked={r["id"] for r in inserted if r["blocked"]},
                        recipients={(r.tenant_id, r.phone): z["recipient_id"]
                                    for r, z in zip(rows, inserted, strict=True)})
    if len(rows) < len(first):  # a redelivery or a retry: the rows that were there already
        done = {r.message_key for r in rows}
        rows += [_row(r) for r in await conn.fetch(
            f"SELECT {_COLS} FROM messages WHERE message_key = ANY($1)",
            [k for k in first if k not in done])]
    return rows, screened


def _new_row(id_: int, item: SendRequest, lane: Lane, updated_at: datetime) -> MessageRow:
    """The row just inserted for ``item``: its values as sent, state ``queued``."""
    return MessageRow(
        id=id_, message_key=item.message_key, tenant_id=item.tenant_id, lane=lane,
        state=MessageState.QUEUED, phone=item.phone, body=item.body, client_ref=item.message_key,
        expires_at=item.expires_at, attempts=0, provider=None, user_id=item.user_id,
        promotion_id=item.promotion_id, campaign_run_id=item.campaign_run_id,
        updated_at=updated_at,
    )


@dataclass(frozen=True, slots=True)
class PendingPage:
    """One page of a lane's pending rows, by id: those untouched for the grace, where to go on
    from, and whether any row further on can be old enough yet."""

    stale: list[MessageRow]
    last_id: int
    more: bool


async def stale_rows(
    conn: Conn, *, lane: Lane, older_than_s: float, after_id: int, limit: int
) -> PendingPage:
    """A lane's rows in ``queued``/``sending`` untouched for ``older_than_s`` seconds.

    The page walks the lane's pending index by id, which follows creation: once a row created
    within the grace is met, the rows after it are younger too and the walk ends (a row of a
    long transaction with an older creation is found by a later sweep). Filtering by age in the
    statement instead made the planner read the whole message log each sweep.
    """
    rows = await conn.fetch(
        f"SELECT {_COLS}, created_at < now() - make_interval(secs => $2) AS created_before,"
        " updated_at < now() - make_interval(secs => $2) AS untouched"
        " FROM messages WHERE lane = $1::message_lane AND pending AND id > $3"
        " ORDER BY id LIMIT $4",
        lane.value, older_than_s, after_id, limit,
    )
    young = next((n for n, r in enumerate(rows) if not r["created_before"]), None)
    old = rows if young is None else rows[:young]
    return PendingPage(stale=[_row(r) for r in old if r["untouched"]],
                       last_id=old[-1]["id"] if old else after_id,
                       more=young is None and len(rows) == limit)


async def claim_for_sending(
    conn: Conn, *, ids: Sequence[int], provider: str, actor: str, reason: str
) -> set[int]:
    """``queued → sending`` for the rows that may still be sent; returns the ids claimed."""
    if not ids:
        return set()
    rows = await conn.fetch(_CLAIM, list(ids), provider, actor, reason)
    return {r["message_id"] for r in rows}


async def defer(
    conn: Conn, *, deferrals: Sequence[tuple[int, datetime]], reason: str, actor: str
) -> dict[int, str | None]:
    """``queued → deferred`` with each row's ``not_before``; returns the ids moved, each with
    the provider the row is with."""
    if not deferrals:
        return {}
    rows = await conn.fetch(
        """
        WITH old AS (
            SELECT m.id, m.state, d.not_before
            FROM unnest($1::bigint[], $2::timestamptz[]) AS d(id, not_before)
            JOIN messages m ON m.id = d.id WHERE m.state::text = 'queued'
            FOR UPDATE OF m
        ), upd AS (
            UPDATE messages m SET state = 'deferred', not_before = old.not_before,
                reason = $3 || to_char(old.not_before AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"'),
                updated_at = now()
            FROM old WHERE m.id = old.id
            RETURNING m.id, old.state AS from_state, m.reason, m.provider
        ), ev AS (
            INSERT INTO message_events (message_id, from_state, to_state, actor, reason)
            SELECT id, from_state, 'deferred', $4, reason FROM upd
        )
        SELECT id AS message_id, provider FROM upd
        """,
        [d[0] for d in deferrals], [d[1] for d in deferrals], reason, actor,
    )
    return {r["message_id"]: r["provider"] for r in rows}


async def due_deferred(conn: Conn, *, now: datetime, limit: int) -> list[MessageRow]:
    """Deferred rows whose ``not_before`` has come, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_COLS} FROM messages WHERE deferred_until <= $1"
        " ORDER BY deferred_until, id LIMIT $2",
        now, limit,
    )
    return [_row(r) for r in rows]


async def requeue_failed(conn: Conn, *, keys: Sequence[str], actor: str) -> set[int]:
    """``failed → queued`` for these message keys (a dead-letter replay)."""
    ids = await conn.fetch(
        "SELECT id FROM messages WHERE message_key = ANY($1::text[]) AND state = 'failed'", list(keys)
    )
    return set(await transition(conn, ids=[r["id"] for r in ids], to=MessageState.QUEUED,
                                from_states=[MessageState.FAILED], reason="dlq replay",
                                actor=actor))


async def transition(
    conn: Conn,
    *,
    ids: Sequence[int],
    to: MessageState,
    from_states: Sequence[MessageState],
    reason: str | None,
    actor: str,
    attempts: int = 0,
    provider: str | None = None,
) -> dict[int, str | None]:
    """Move the rows still in ``from_states`` to ``to``; returns the ids actually moved, each
    with the provider the row is with. ``attempts`` is added to their attempt count (-1 gives
    back the attempt of a claim whose call the provider did not process: a 429)."""
    if not ids:
        return {}
    rows = await conn.fetch(
        _TRANSITION, list(ids), to.value, reason, [s.value for s in from_states], actor,
        attempts, provider,
    )
    return {r["message_id"]: r["provider"] for r in rows}


async def mark_accepted(
    conn: Conn, *, accepted: Sequence[tuple[int, str]], actor: str,
    segments: Sequence[int | None] | None = None,
    part_ids: Mapping[int, Sequence[str]] | None = None,
) -> set[int]:
    """``sending`` → ``accepted`` with the provider's message ids (and segment counts), and the
    ids the provider gave each part of a multi-part message (``part_ids`` by message id), in
    one transaction: a part's receipt finds its place from then on. Returns the ids moved."""
    return set(await accept_messages(conn, accepted=accepted, actor=actor, segments=segments,
                                     part_ids=part_ids))


async def accept_messages(
    conn: Conn, *, accepted: Sequence[tuple[int, str]], actor: str,
    segments: Sequence[int | None] | None = None,
    part_ids: Mapping[int, Sequence[str]] | None = None,
) -> dict[int, str | None]:
    """:func:`mark_accepted`, answering each moved id with the provider it is with."""
    if not accepted:
        return {}
    segs = list(segments) if segments is not None else [None] * len(accepted)
    async with conn.transaction():
        rows = await conn.fetch(
            _ACCEPT, [a[0] for a in accepted], [a[1] for a in accepted], actor, segs
        )
        moved = {r["message_id"]: r["provider"] for r in rows}
        places = [(mid, pid, n, len(ids)) for mid, ids in (part_ids or {}).items()
                  if mid in moved and len(ids) > 1 for n, pid in enumerate(ids, 1)]
        if places:
            await conn.execute(_PARTS, *(list(col) for col in zip(*places, strict=True)))
    return moved


async def apply_receipts(
    conn: Conn, *, receipts: Sequence[tuple[str, str, str | None]], actor: str,
    from_states: Sequence[str] = ("sending", "accepted", "unknown"),
) -> list[asyncpg.Record]:
    """Apply (client_ref, delivered|failed|expired, error) receipts once to the messages still
    in ``from_states``; final states stay final. A client reference is the message key (a
    check in the schema keeps them equal).

    Returns the messages that changed (key, tenant, lane, state, error, ids), for events.
    """
    valid = [r for r in receipts if r[1] in ("delivered", "failed", "expired")]
    if not valid:
        return []
    return list(await conn.fetch(
        _RECEIPTS, [r[0] for r in valid], [r[1] for r in valid], [r[2] for r in valid], actor,
        list(from_states),
    ))

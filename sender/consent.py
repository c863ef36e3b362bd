"""Who may be sent to: opt-outs and marketing consent.

A message may not go to an opted-out number (the confirmations of STOP/START/HELP excepted),
and the marketing lanes (geo, bulk) need the consent record of a recipient who has not opted
out; otp and transactional messages (asked for by the recipient: a code, an order update) need
no marketing consent, but a STOP blocks them too (CTIA). The rule is SQL, checked where it
decides: at enqueue (``repo.enqueue`` reports the rows blocked then), right before the provider
call (:func:`suppress_blocked`) and once more in the claim statement itself
(``repo.claim_for_sending``), so a STOP that lands while a chunk waits for its grant still holds.
Replies that opt out or in are stored by ``sender.inbound_repo``.
"""

from __future__ import annotations

from collections.abc import Sequence

from hexcast.core.db import Conn

__all__ = ["NO_CONSENT", "OPTED_OUT", "suppress_blocked"]

# A message may not go out to an opted-out number (confirmations excepted), and marketing
# lanes need a consent record of a recipient who has not opted out.
OPTED_OUT = (
    "EXISTS (SELECT 1 FROM opt_outs o WHERE o.tenant_id = m.tenant_id AND o.phone = m.phone)"
)
NO_CONSENT = (
    "(m.lane::text NOT IN ('otp', 'transactional') AND NOT EXISTS (SELECT 1 FROM recipients r"
    " WHERE r.tenant_id = m.tenant_id AND r.phone = m.phone AND r.consent_at IS NOT NULL"
    " AND r.opted_out_at IS NULL))"
)

_SUPPRESS = f"""
WITH old AS (
    SELECT m.id, m.state,
        CASE WHEN {OPTED_OUT} THEN 'opted out' ELSE 'no marketing consent' END AS why
    FROM messages m WHERE m.id = ANY($1::bigint[]) AND m.state::text = 'queued'
    AND NOT m.confirmation AND ({OPTED_OUT} OR {NO_CONSENT})
    FOR UPDATE OF m
), upd AS (
    UPDATE messages m SET state = 'suppressed', reason = old.why, updated_at = now()
    FROM old WHERE m.id = old.id
    RETURNING m.id, old.state AS from_state, old.why, m.provider
), ev AS (
    INSERT INTO message_events (message_id, from_state, to_state, actor, reason)
    SELECT id, from_state, 'suppressed', $2, why FROM upd
)
SELECT id AS message_id, why AS reason, provider FROM upd
"""



async def suppress_blocked(
    conn: Conn, *, ids: Sequence[int], actor: str
) -> dict[int, tuple[str, str | None]]:
    """``queued → suppressed`` for opted-out numbers and marketing without consent: id → (why,
    the provider the row is with)."""
    if not ids:
        return {}
    rows = await conn.fetch(_SUPPRESS, list(ids), actor)
    return {r["message_id"]: (r["reason"], r["provider"]) for r in rows}

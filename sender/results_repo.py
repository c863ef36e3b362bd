"""Read-only queries for campaign results: one row per recipient of a run, and its control group.

A click is a non-bot click on one of the message's short links; an opt-out is a STOP from the
message's number after it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hexcast.core.db import Conn

__all__ = ["RecipientOutcome", "run_holdout_users", "run_outcomes"]


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    user_id: str
    state: str
    sent_at: datetime | None
    clicked: bool
    opted_out: bool


async def run_outcomes(conn: Conn, *, tenant_id: int, run_id: int) -> list[RecipientOutcome]:
    """Each message of a campaign run: its recipient, final state, click and opt-out."""
    rows = await conn.fetch(
        "SELECT m.user_id, m.state::text AS state, m.sent_at,"
        " EXISTS (SELECT 1 FROM short_links s JOIN link_clicks c ON c.code = s.code"
        "   WHERE s.tenant_id = m.tenant_id AND s.message_key = m.message_key AND NOT c.bot) AS clicked,"
        " EXISTS (SELECT 1 FROM opt_outs o WHERE o.tenant_id = m.tenant_id AND o.phone = m.phone"
        "   AND m.sent_at IS NOT NULL AND o.opted_out_at >= m.sent_at) AS opted_out"
        " FROM messages m WHERE m.tenant_id = $1 AND m.campaign_run_id = $2 ORDER BY m.id",
        tenant_id, run_id,
    )
    return [RecipientOutcome(r["user_id"], r["state"], r["sent_at"], r["clicked"], r["opted_out"])
            for r in rows]


async def run_holdout_users(conn: Conn, *, tenant_id: int, run_id: int) -> list[str]:
    """The user ids of a run's control group (recorded by the scheduler, never sent)."""
    rows = await conn.fetch(
        "SELECT r.user_id FROM campaign_holdouts h JOIN recipients r ON r.id = h.recipient_id"
        " WHERE h.run_id = $1 AND r.tenant_id = $2 ORDER BY r.id",
        run_id, tenant_id,
    )
    return [r["user_id"] for r in rows]

"""Read-only message counts: per campaign run for campaign stats, and per released chunk for
the scheduler's backpressure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hexcast.core.db import Conn
from sender.reservations_repo import reservation_counts

__all__ = ["RunMessageStats", "run_message_stats", "settled_count"]


@dataclass(slots=True)
class RunMessageStats:
    states: dict[str, int] = field(default_factory=dict)
    suppressed_by_reason: dict[str, int] = field(default_factory=dict)
    expired_by_reason: dict[str, int] = field(default_factory=dict)
    sent: int = 0  # reached the provider (accepted at some point)
    clicks: int = 0  # clicks by people (bots and prefetchers excluded) on the run's links
    clicked: int = 0  # messages with at least one such click
    opt_outs: int = 0  # recipients who opted out after a message of the run was sent to them
    reserved: int = 0  # recipients whose daily cap slot the run reserved (priority reserved)
    held_back: int = 0  # geo offers suppressed because the run had reserved their slot


async def run_message_stats(
    conn: Conn, *, tenant_id: int, run_ids: Sequence[int]
) -> dict[int, RunMessageStats]:
    """Per run: messages per state, suppressed and expired per reason, and how many were sent."""
    rows = await conn.fetch(
        "SELECT campaign_run_id AS run_id, state::text AS state, reason, count(*) AS n,"
        " count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent"
        " FROM messages WHERE tenant_id = $1 AND campaign_run_id = ANY($2::bigint[])"
        " GROUP BY 1, 2, 3",
        tenant_id, list(run_ids),
    )
    out = {run_id: RunMessageStats() for run_id in run_ids}
    for r in rows:
        stats = out[r["run_id"]]
        stats.states[r["state"]] = stats.states.get(r["state"], 0) + r["n"]
        stats.sent += r["sent"]
        by_reason = {"suppressed": stats.suppressed_by_reason,
                     "expired": stats.expired_by_reason}.get(r["state"])
        if by_reason is not None:
            reason = r["reason"] or "unspecified"
            by_reason[reason] = by_reason.get(reason, 0) + r["n"]
    await _add_engagement(conn, out, tenant_id=tenant_id, run_ids=run_ids)
    reserved = await reservation_counts(conn, tenant_id=tenant_id, run_ids=run_ids)
    for run_id, (n, held) in reserved.items():
        out[run_id].reserved, out[run_id].held_back = n, held
    return out


async def _add_engagement(
    conn: Conn, out: dict[int, RunMessageStats], *, tenant_id: int, run_ids: Sequence[int]
) -> None:
    """Human clicks on the runs' short links, and opt-outs recorded after a run's send."""
    clicks = await conn.fetch(
        "SELECT m.campaign_run_id AS run_id, count(*) AS clicks,"
        " count(DISTINCT m.id) AS clicked FROM messages m"
        " JOIN short_links l ON l.message_key = m.message_key"
        " JOIN link_clicks c ON c.code = l.code AND NOT c.bot"
        " WHERE m.tenant_id = $1 AND m.campaign_run_id = ANY($2::bigint[]) GROUP BY 1",
        tenant_id, list(run_ids),
    )
    for r in clicks:
        out[r["run_id"]].clicks, out[r["run_id"]].clicked = r["clicks"], r["clicked"]
    opt_outs = await conn.fetch(
        "SELECT m.campaign_run_id AS run_id, count(DISTINCT m.phone) AS n FROM messages m"
        " JOIN opt_outs o ON o.tenant_id = m.tenant_id AND o.phone = m.phone"
        " AND o.opted_out_at >= m.sent_at"
        " WHERE m.tenant_id = $1 AND m.campaign_run_id = ANY($2::bigint[]) GROUP BY 1",
        tenant_id, list(run_ids),
    )
    for r in opt_outs:
        out[r["run_id"]].opt_outs = r["n"]


async def settled_count(conn: Conn, *, message_keys: Sequence[str]) -> int:
    """How many of ``message_keys`` a sender has taken in and finished with for now (any state
    but ``queued`` and ``sending``; a deferred message counts, it left the lane)."""
    n: int = await conn.fetchval(
        "SELECT count(*) FROM messages WHERE message_key = ANY($1::text[])"
        " AND state NOT IN ('queued', 'sending')",
        list(message_keys),
    )
    return n

"""Read-only SQL the notebooks use: campaign results, recipients' visit behaviour, visits in a window.

Campaign results are one row per recipient of a run, and its control group: a click is a non-bot
click on one of the message's short links; an opt-out is a STOP from the message's number after
it was sent. Every query is scoped to one tenant. The service never runs these, so they live
here rather than in the domains' repos.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hexcast.core.db import Conn
from targeting import SegmentDefinition, audience_query

__all__ = [
    "RecipientOutcome",
    "click_counts_by_promotion",
    "geo_outcomes_by_promotion",
    "visit_cell_counts",
    "visit_count",
    "visit_points",
    "reachable_behaviour",
    "run_holdout_users",
    "run_outcomes",
    "segment_user_ids",
    "visits_between",
]

Row = asyncpg.Record


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


# ------------------------------------------------------------------ recipients and visits


async def reachable_behaviour(conn: Conn, *, tenant_id: int, as_of: datetime) -> list[Row]:
    """Recipients a segment could reach at ``as_of`` (consent, not opted out by then) with their
    visit behaviour before it: visits, active days, evening (17-22 h in the recipient's zone, UTC
    without one) visits, days since the last visit (None without visits)."""
    return list(await conn.fetch(
        "SELECT r.user_id, r.time_zone, r.interests, COALESCE(v.visits, 0) AS visits,"
        " COALESCE(v.active_days, 0) AS active_days, COALESCE(v.evening, 0) AS evening,"
        " EXTRACT(EPOCH FROM ($2::timestamptz - v.last_ts)) / 86400 AS days_since_last"
        " FROM recipients r LEFT JOIN LATERAL ("
        "   SELECT count(*) AS visits, count(DISTINCT (x.ts AT TIME ZONE z.tz)::date) AS active_days,"
        "   count(*) FILTER (WHERE extract(hour FROM x.ts AT TIME ZONE z.tz) BETWEEN 17 AND 21)"
        "   AS evening, max(x.ts) AS last_ts"
        "   FROM visits x, (SELECT COALESCE(r.time_zone, 'UTC') AS tz) z"
        "   WHERE x.tenant_id = r.tenant_id AND x.user_id = r.user_id AND x.ts < $2) v ON true"
        " WHERE r.tenant_id = $1 AND r.consent_at IS NOT NULL"
        " AND (r.opted_out_at IS NULL OR r.opted_out_at > $2)"
        " ORDER BY r.id",
        tenant_id, as_of,
    ))


async def segment_user_ids(
    conn: Conn, *, segment: SegmentDefinition, tenant_id: int, fallback_zone: str,
    as_of: datetime, resolution: int, page: int = 5000,
) -> list[str]:
    """The user ids a segment selects (its control group included), by the segment SQL."""
    out: list[str] = []
    after = 0
    while True:
        sql, args = audience_query(
            segment, tenant_id=tenant_id, campaign_id=0, fallback_zone=fallback_zone, as_of=as_of,
            resolution=resolution, zone=None, after_id=after, limit=page,
        )
        rows = await conn.fetch(sql, *args)
        out.extend(r["user_id"] for r in rows)
        if len(rows) < page:
            return out
        after = rows[-1]["id"]


async def visits_between(
    conn: Conn, *, tenant_id: int, since: datetime, until: datetime
) -> list[tuple[str, float, float, datetime]]:
    """(user id, lat, lng, ts) of the visits in [since, until)."""
    rows = await conn.fetch(
        "SELECT user_id, lat, lng, ts FROM visits WHERE tenant_id = $1 AND ts >= $2 AND ts < $3",
        tenant_id, since, until,
    )
    return [(r["user_id"], r["lat"], r["lng"], r["ts"]) for r in rows]


async def visit_count(conn: Conn, *, tenant_id: int) -> int:
    """How many visits a tenant has in the history."""
    return int(await conn.fetchval("SELECT count(*) FROM visits WHERE tenant_id = $1", tenant_id))


async def visit_cell_counts(conn: Conn, *, tenant_id: int) -> dict[str, int]:
    """Visits per stored cell (H3 resolution 9, the archiver's)."""
    rows = await conn.fetch(
        "SELECT cell, count(*) AS n FROM visits WHERE tenant_id = $1 GROUP BY cell", tenant_id
    )
    return {r["cell"]: r["n"] for r in rows}


async def visit_points(conn: Conn, *, tenant_id: int) -> list[tuple[str, float, float]]:
    """Every visit of a tenant as (user id, lat, lng), in time order."""
    rows = await conn.fetch(
        "SELECT user_id, lat, lng FROM visits WHERE tenant_id = $1 ORDER BY ts, event_id", tenant_id
    )
    return [(r["user_id"], r["lat"], r["lng"]) for r in rows]


async def geo_outcomes_by_promotion(conn: Conn, *, tenant_id: int) -> dict[int, dict[str, int]]:
    """A tenant's geo messages per promotion, counted per state."""
    rows = await conn.fetch(
        "SELECT promotion_id, state::text, count(*) AS n FROM messages"
        " WHERE tenant_id = $1 AND lane = 'geo' AND promotion_id IS NOT NULL GROUP BY 1, 2",
        tenant_id,
    )
    out: dict[int, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["promotion_id"], {})[r["state"]] = r["n"]
    return out


async def click_counts_by_promotion(conn: Conn, *, tenant_id: int) -> dict[int, int]:
    """Geo messages clicked at least once by a person (bots and prefetchers excluded), per
    promotion, from the tracked short links."""
    rows = await conn.fetch(
        "SELECT m.promotion_id, count(DISTINCT m.id) AS n FROM messages m"
        " JOIN short_links l ON l.message_key = m.message_key"
        " JOIN link_clicks c ON c.code = l.code AND NOT c.bot"
        " WHERE m.tenant_id = $1 AND m.lane = 'geo' AND m.promotion_id IS NOT NULL GROUP BY 1",
        tenant_id,
    )
    return {r["promotion_id"]: r["n"] for r in rows}

"""SQL of templates, campaigns, runs, waves and holdouts. Tenant-scoped where a tenant asks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from hexcast.core.db import Conn, one
from hexcast.core.errors import NotFound
from scheduler.forecast import WavePlan

__all__ = [
    "active_campaigns",
    "checkpoint",
    "claim_wave",
    "delete_template",
    "finish_wave",
    "get_campaign",
    "get_run",
    "get_template",
    "insert_campaign",
    "insert_run",
    "insert_template",
    "keep_claim",
    "last_run",
    "list_campaigns",
    "list_runs",
    "list_templates",
    "release_claim",
    "renew_lease",
    "run_state",
    "set_campaign_state",
    "update_campaign",
    "waves_of",
]

Row = asyncpg.Record
_TEMPLATE_COLS = "id, tenant_id, name, body, created_at"
_CAMPAIGN_COLS = (
    "id, tenant_id, name, template_id, body, segment, cron, run_at, time_zone, time_mode,"
    " deadline, max_rate, lane::text AS lane, on_deadline, priority, state, created_at"
)
_RUN_COLS = (
    "id, campaign_id, tenant_id, scheduled_for, first_fire_at, state, rate_per_s, created_at, released_at,"
    " finished_at, counts"
)
_WAVE_COLS = (
    "id, run_id, time_zone, fire_at, deadline_at, state, cursor_id, released, held_out, expired,"
    " chunks,"
    " claimed_by, lease_until, at_risk_at"
)


async def insert_template(conn: Conn, *, tenant_id: int, name: str, body: str) -> Row:
    return one(await conn.fetchrow(
        f"INSERT INTO templates (tenant_id, name, body) VALUES ($1, $2, $3) RETURNING {_TEMPLATE_COLS}",
        tenant_id, name, body,
    ))


async def get_template(conn: Conn, *, tenant_id: int, template_id: int) -> Row:
    row: Row | None = await conn.fetchrow(
        f"SELECT {_TEMPLATE_COLS} FROM templates WHERE tenant_id = $1 AND id = $2",
        tenant_id, template_id,
    )
    if row is None:
        raise NotFound(f"template {template_id} not found")
    return row


async def list_templates(conn: Conn, *, tenant_id: int, after_id: int, limit: int) -> list[Row]:
    return list(await conn.fetch(
        f"SELECT {_TEMPLATE_COLS} FROM templates WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        tenant_id, after_id, limit,
    ))


async def delete_template(conn: Conn, *, tenant_id: int, template_id: int) -> None:
    """Campaigns keep their copy of the body; their template_id becomes NULL."""
    gone = await conn.fetchval(
        "DELETE FROM templates WHERE tenant_id = $1 AND id = $2 RETURNING id", tenant_id, template_id
    )
    if gone is None:
        raise NotFound(f"template {template_id} not found")


async def update_campaign(conn: Conn, *, tenant_id: int, campaign_id: int, values: dict[str, Any]) -> Row:
    sets = ", ".join(f"{col} = ${i + 3}" for i, col in enumerate(values))
    row: Row | None = await conn.fetchrow(
        f"UPDATE campaigns SET {sets} WHERE tenant_id = $1 AND id = $2 RETURNING {_CAMPAIGN_COLS}",
        tenant_id, campaign_id, *values.values(),
    )
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return row


async def insert_campaign(conn: Conn, *, tenant_id: int, values: dict[str, Any]) -> Row:
    cols = list(values)
    marks = ", ".join(f"${i + 2}" for i in range(len(cols)))
    return one(await conn.fetchrow(
        f"INSERT INTO campaigns (tenant_id, {', '.join(cols)}) VALUES ($1, {marks})"
        f" RETURNING {_CAMPAIGN_COLS}",
        tenant_id, *values.values(),
    ))


async def get_campaign(conn: Conn, *, tenant_id: int | None, campaign_id: int) -> Row:
    """A campaign; ``tenant_id=None`` is the operator's view across tenants."""
    row: Row | None = await conn.fetchrow(
        f"SELECT {_CAMPAIGN_COLS} FROM campaigns WHERE id = $1 AND ($2::bigint IS NULL OR tenant_id = $2)",
        campaign_id, tenant_id,
    )
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return row


async def list_campaigns(conn: Conn, *, tenant_id: int, after_id: int, limit: int) -> list[Row]:
    return list(await conn.fetch(
        f"SELECT {_CAMPAIGN_COLS} FROM campaigns WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        tenant_id, after_id, limit,
    ))


async def active_campaigns(conn: Conn) -> list[Row]:
    return list(await conn.fetch(f"SELECT {_CAMPAIGN_COLS} FROM campaigns WHERE state = 'active'"))


async def set_campaign_state(conn: Conn, *, campaign_id: int, state: str, run_state: str,
                             from_run_states: Sequence[str]) -> list[int]:
    """Set the campaign's state and move its unfinished runs; returns the moved run ids."""
    await conn.execute("UPDATE campaigns SET state = $2 WHERE id = $1", campaign_id, state)
    rows = await conn.fetch(
        "UPDATE campaign_runs SET state = $2 WHERE campaign_id = $1 AND released_at IS NULL"
        " AND state = ANY($3::text[]) RETURNING id",
        campaign_id, run_state, list(from_run_states),
    )
    ids = [r["id"] for r in rows]
    if run_state == "cancelled" and ids:
        await conn.execute(
            "UPDATE campaign_waves SET state = 'cancelled', claimed_by = NULL, lease_until = NULL"
            " WHERE run_id = ANY($1::bigint[]) AND state IN ('pending', 'releasing')",
            ids,
        )
    return ids


async def last_run(conn: Conn, *, campaign_id: int) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT max(scheduled_for) FROM campaign_runs WHERE campaign_id = $1", campaign_id
    )
    return value


async def insert_run(
    conn: Conn, *, campaign_id: int, tenant_id: int, scheduled_for: datetime,
    first_fire_at: datetime, rate: float, forecast: dict[str, Any], waves: list[WavePlan],
) -> int | None:
    """Create a run and its waves; None if the run exists already (another scheduler won)."""
    async with conn.transaction():
        run_id: int | None = await conn.fetchval(
            "INSERT INTO campaign_runs (campaign_id, tenant_id, scheduled_for, first_fire_at,"
            " rate_per_s, forecast) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (campaign_id, scheduled_for) DO NOTHING RETURNING id",
            campaign_id, tenant_id, scheduled_for, first_fire_at, rate, forecast,
        )
        if run_id is None:
            return None
        await conn.executemany(
            "INSERT INTO campaign_waves (run_id, time_zone, fire_at, deadline_at) VALUES ($1, $2, $3, $4)",
            [(run_id, w.time_zone, w.fire_at, w.deadline_at) for w in waves],
        )
        if not waves:  # an empty recipient-local audience: nothing to release
            await conn.execute("UPDATE campaign_runs SET released_at = now() WHERE id = $1", run_id)
    return run_id


# A run's waves are released one after another, in the plan's order (fire instant, then the
# earlier deadline: run-now fires every zone at once), never side by side: the forecast and the
# rate a deadline needs (scheduler.forecast) serve them so, and sharing the run's rate between
# overlapping waves would make the earlier deadlines miss (DESIGN.md, "Waves in order"). A wave
# is due when no earlier wave of its run is left to release. ``due_waves``: the run's waves
# fired and not yet released, this one included (its share of send.bulk, see the runner).
_DUE_WAVES = """(
    SELECT count(*) FROM campaign_waves d
    WHERE d.run_id = w.run_id AND d.state IN ('pending', 'releasing') AND d.fire_at <= now()
)::int AS due_waves"""
_CLAIM = f"""
UPDATE campaign_waves w SET claimed_by = $1, lease_until = now() + make_interval(secs => $2),
    state = 'releasing', started_at = COALESCE(w.started_at, now())
WHERE w.id = (
    SELECT w2.id FROM campaign_waves w2 JOIN campaign_runs r ON r.id = w2.run_id
    WHERE w2.state IN ('pending', 'releasing') AND w2.fire_at <= now() AND r.state = 'running'
      AND (w2.lease_until IS NULL OR w2.lease_until < now())
      AND NOT EXISTS (
          SELECT 1 FROM campaign_waves e
          WHERE e.run_id = w2.run_id AND e.state IN ('pending', 'releasing')
            AND (e.fire_at, COALESCE(e.deadline_at, 'infinity'), e.id)
                < (w2.fire_at, COALESCE(w2.deadline_at, 'infinity'), w2.id))
    ORDER BY w2.fire_at, w2.id
    FOR UPDATE OF w2 SKIP LOCKED
    LIMIT 1
)
RETURNING {_WAVE_COLS}, {_DUE_WAVES}
"""
_KEEP = f"""
UPDATE campaign_waves w SET lease_until = now() + make_interval(secs => $3)
WHERE w.id = $1 AND w.claimed_by = $2 AND w.state = 'releasing'
RETURNING {_WAVE_COLS}, {_DUE_WAVES}
"""


async def claim_wave(conn: Conn, *, owner: str, lease_s: float) -> Row | None:
    """Claim one due wave nobody holds (or whose holder's lease lapsed), the first of its run
    still to release."""
    row: Row | None = await conn.fetchrow(_CLAIM, owner, lease_s)
    return row


async def keep_claim(conn: Conn, *, wave_id: int, owner: str, lease_s: float) -> Row | None:
    """The wave as last checkpointed, its lease renewed, if ``owner`` still holds it (a
    release an outage interrupted goes on from there); None if the claim was lost."""
    row: Row | None = await conn.fetchrow(_KEEP, wave_id, owner, lease_s)
    return row


async def checkpoint(
    conn: Conn, *, wave_id: int, owner: str, lease_s: float, cursor_id: int, released: int,
    held_out: Sequence[int], run_id: int, expired: int | None = None,
) -> bool:
    """Record a published chunk (or, given ``expired``, a page cut at the deadline: counted,
    never published, not a chunk) and renew the lease; False if the claim was lost."""
    async with conn.transaction():
        moved = await conn.fetchval(
            "UPDATE campaign_waves SET cursor_id = $3, released = released + $4,"
            " held_out = held_out + $5, expired = expired + COALESCE($7::int, 0),"
            " chunks = chunks + ($7::int IS NULL)::int,"
            " lease_until = now() + make_interval(secs => $6)"
            " WHERE id = $1 AND claimed_by = $2 AND state = 'releasing' AND cursor_id < $3 RETURNING id",
            wave_id, owner, cursor_id, released, len(held_out), lease_s, expired,
        )
        if moved is None:
            return False
        await conn.execute(
            "INSERT INTO campaign_holdouts (run_id, recipient_id)"
            " SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
            run_id, list(held_out),
        )
    return True


async def renew_lease(conn: Conn, *, wave_id: int, owner: str, lease_s: float) -> bool:
    """Extend the claim while pacing; False if it was lost."""
    kept = await conn.fetchval(
        "UPDATE campaign_waves SET lease_until = now() + make_interval(secs => $3)"
        " WHERE id = $1 AND claimed_by = $2 AND state = 'releasing' RETURNING id",
        wave_id, owner, lease_s,
    )
    return kept is not None


async def finish_wave(conn: Conn, *, wave_id: int, owner: str, run_id: int) -> bool:
    """Mark the wave released; mark the run released when it was the last. True if the run was.

    The run row is locked first, so waves finishing at once (one scheduler releases waves side
    by side, replicas too) are serialised: the last one sees every other wave done."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM campaign_runs WHERE id = $1 FOR UPDATE", run_id)
        await conn.execute(
            "UPDATE campaign_waves SET state = 'done', finished_at = now(), lease_until = NULL"
            " WHERE id = $1 AND claimed_by = $2 AND state = 'releasing'",
            wave_id, owner,
        )
        done = await conn.fetchval(
            "UPDATE campaign_runs SET released_at = now() WHERE id = $1 AND released_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM campaign_waves WHERE run_id = $1"
            " AND state IN ('pending', 'releasing')) RETURNING id",
            run_id,
        )
    return done is not None


async def release_claim(conn: Conn, *, wave_id: int, owner: str) -> None:
    await conn.execute(
        "UPDATE campaign_waves SET claimed_by = NULL, lease_until = NULL WHERE id = $1 AND claimed_by = $2",
        wave_id, owner,
    )


async def run_state(conn: Conn, *, run_id: int) -> str:
    state: str | None = await conn.fetchval("SELECT state FROM campaign_runs WHERE id = $1", run_id)
    return state or "cancelled"


async def get_run(conn: Conn, *, run_id: int) -> Row:
    row: Row | None = await conn.fetchrow(f"SELECT {_RUN_COLS} FROM campaign_runs WHERE id = $1", run_id)
    if row is None:
        raise NotFound(f"run {run_id} not found")
    return row


async def list_runs(conn: Conn, *, campaign_id: int) -> list[Row]:
    return list(await conn.fetch(
        f"SELECT {_RUN_COLS} FROM campaign_runs WHERE campaign_id = $1 ORDER BY id", campaign_id
    ))


async def waves_of(conn: Conn, *, run_ids: Sequence[int]) -> list[Row]:
    return list(await conn.fetch(
        f"SELECT {_WAVE_COLS} FROM campaign_waves WHERE run_id = ANY($1::bigint[]) ORDER BY fire_at, id",
        list(run_ids),
    ))

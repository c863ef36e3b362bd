"""SQL of run lifecycle and progress: unfinished runs, their tallies, finishing, at-risk marks.

The tallies are written by a trigger on ``messages`` (migration 0024); here they are summed,
folded and dropped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from hexcast.core.db import Conn

__all__ = [
    "fold_tallies",
    "lifecycle_waves",
    "mark_at_risk",
    "message_counts",
    "record_finish",
    "tallies",
    "unfinished_runs",
    "unfinished_runs_by_state",
]

Row = asyncpg.Record

_UNFINISHED = """
SELECT r.id, r.tenant_id, r.campaign_id, r.state, r.released_at IS NOT NULL AS released,
    r.rate_per_s, r.forecast -> 'waves' AS planned, c.time_zone AS campaign_zone,
    t.quiet_start, t.quiet_end
FROM campaign_runs r JOIN campaigns c ON c.id = r.campaign_id JOIN tenants t ON t.id = r.tenant_id
WHERE r.finished_at IS NULL AND r.state IN ('running', 'cancelled')
  AND ($1::bigint[] IS NULL OR r.id = ANY($1::bigint[]))
ORDER BY r.id
"""


async def unfinished_runs(conn: Conn, *, run_ids: Sequence[int] | None = None) -> list[Row]:
    """Runs not finished yet and not paused (all, or those of ``run_ids``), with what their
    progress needs: the planned waves, the campaign's zone, the tenant's own sending window."""
    return list(await conn.fetch(_UNFINISHED, None if run_ids is None else list(run_ids)))


async def unfinished_runs_by_state(conn: Conn) -> dict[str, int]:
    """Runs not finished yet per state (the partial index of unfinished runs; finished runs,
    however many, are not read)."""
    rows = await conn.fetch("SELECT state, count(*) AS n FROM campaign_runs"
                            " WHERE finished_at IS NULL GROUP BY state")
    return {r["state"]: r["n"] for r in rows}


async def lifecycle_waves(conn: Conn, *, run_ids: Sequence[int]) -> list[Row]:
    return list(await conn.fetch(
        "SELECT id, run_id, time_zone, fire_at, deadline_at, state, released, held_out, expired,"
        " started_at, finished_at, at_risk_at FROM campaign_waves WHERE run_id = ANY($1::bigint[])"
        " ORDER BY fire_at, id",
        list(run_ids),
    ))


_TALLIES = """
SELECT t.run_id, sum(t.settled)::bigint AS settled, sum(t.final)::bigint AS final,
    COALESCE(sum(t.settled) FILTER (WHERE t.at > now() - make_interval(secs => w.window_s)), 0)
        ::bigint AS recent,
    extract(epoch FROM now() - max(t.at) FILTER (WHERE t.settled <> 0))::float8 AS idle_s,
    count(*) AS n
FROM campaign_run_tallies t
JOIN unnest($1::bigint[], $2::float8[]) AS w(run_id, window_s) ON w.run_id = t.run_id
GROUP BY t.run_id
"""


async def tallies(conn: Conn, *, windows: dict[int, float]) -> dict[int, Row]:
    """Per run (the keys of ``windows``): settled, final, settled in its last ``window_s``
    seconds (``recent``), seconds since one last settled (``idle_s``) and its tally rows
    (``n``); runs without any are left out."""
    rows = await conn.fetch(_TALLIES, list(windows), list(windows.values()))
    return {r["run_id"]: r for r in rows}


_FOLD = """
WITH old AS (
    DELETE FROM campaign_run_tallies WHERE run_id = $1 AND at < now() - make_interval(secs => $2)
    RETURNING settled, final, at
)
INSERT INTO campaign_run_tallies (run_id, settled, final, at)
SELECT $1, sum(settled), sum(final), COALESCE(max(at) FILTER (WHERE settled <> 0), max(at))
FROM old HAVING count(*) > 0
"""


async def fold_tallies(conn: Conn, *, run_id: int, older_than_s: float) -> None:
    """Fold a run's tally rows older than ``older_than_s`` into one (one statement: a row is
    folded once, whoever else folds at the same time)."""
    await conn.execute(_FOLD, run_id, older_than_s)


async def message_counts(conn: Conn, *, run_id: int) -> dict[str, int]:
    """The run's messages per state: one pass over them, when the run finishes."""
    rows = await conn.fetch(
        "SELECT state::text AS state, count(*) AS n FROM messages WHERE campaign_run_id = $1"
        " GROUP BY 1 ORDER BY 1",
        run_id,
    )
    return {r["state"]: r["n"] for r in rows}


async def record_finish(conn: Conn, *, run_id: int, from_state: str, state: str,
                        counts: dict[str, int], at: datetime | None = None) -> bool:
    """Record the run's end (now, or ``at``: once; False if it was recorded already, or its
    state moved) and drop its tallies; the row's trigger writes ``campaign.finished``."""
    async with conn.transaction():
        done = await conn.fetchval(
            "UPDATE campaign_runs SET state = $3, finished_at = COALESCE($5, now()), counts = $4"
            " WHERE id = $1 AND finished_at IS NULL AND state = $2 RETURNING id",
            run_id, from_state, state, counts, at,
        )
        if done is None:
            return False
        await conn.execute("DELETE FROM campaign_run_tallies WHERE run_id = $1", run_id)
    return True


async def mark_at_risk(conn: Conn, *, wave_id: int, projection: dict[str, Any]) -> bool:
    """Mark the wave at risk, once (False if it was already); its trigger writes
    ``campaign.at_risk`` with ``projection``."""
    marked = await conn.fetchval(
        "UPDATE campaign_waves SET at_risk_at = now(), at_risk_projection = $2"
        " WHERE id = $1 AND at_risk_at IS NULL RETURNING id",
        wave_id, projection,
    )
    return marked is not None

"""The console benchmark's data (bench/console.py): tenants, recipients, ``--messages``
rows of ``messages`` by COPY (the secondary indexes rebuilt after it, as a restore does), running
and finished campaign runs with waves, forecast and tallies, and alerts."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench import ui
from hexcast.core.tenants import create_tenant
from scheduler.forecast import WavePlan, forecast

__all__ = ["COLUMNS", "Layout", "Wave", "chunk", "load", "message_row", "pick", "tally_rows",
           "waves_of"]

LANES = (("otp", 3), ("transactional", 7), ("geo", 10), ("bulk", 80))  # percent of messages
OUTCOMES = (("delivered", 74), ("accepted", 15), ("failed", 5), ("expired", 2), ("suppressed", 2),
            ("unknown", 2))
SETTLED = frozenset({"accepted", "unknown", "delivered", "failed", "expired", "suppressed"})
FINAL = frozenset({"delivered", "failed", "expired", "suppressed"})  # as migration 0024's tally
ROUTES = ("sim-a", "sim-b", "sim-c")
ALERTS = ("RouteErrorRate", "CampaignAtRisk", "LaneBacklog")
ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
BODY = "Holiday Outfitters: 30% off everything until midnight. Reply STOP to opt out."
COLUMNS = ("message_key", "client_ref", "tenant_id", "lane", "user_id", "phone", "body", "campaign_run_id",
           "state", "reason", "attempts", "provider", "provider_message_id", "not_before", "created_at",
           "updated_at", "sent_at", "delivered_at", "segments")
CHUNK = 100_000
RATE = 200.0  # each run's planned messages/s

def pick(weights: Sequence[tuple[str, int]], x: int) -> str:
    """The name whose share of the cumulative weights holds ``x`` (0 ≤ x < their sum)."""
    for name, weight in weights:
        if x < weight:
            return name
        x -= weight
    return weights[-1][0]


@dataclass(frozen=True)
class Layout:
    """Where the loaded messages go: ``running`` and ``finished`` are (run id, tenant id)."""

    messages: int
    tenants: Sequence[int]
    running: Sequence[tuple[int, int]]
    finished: Sequence[tuple[int, int]]
    now: datetime
    hours: float = 6.0
    people: int = 1000  # recipients per tenant
    fresh: float = 0.02  # the newest share of the timeline, where half the messages still wait


def phone(tenant_id: int, k: int) -> str:
    return f"+1{200 + tenant_id % 700:03d}{k:07d}"


def _state(h: int, p: float, lay: Layout) -> tuple[str, str | None, datetime | None]:
    if p >= 1 - lay.fresh and (h >> 8) % 2 == 0:
        return ("queued" if (h >> 9) % 3 else "sending"), None, None
    if (h >> 8) % 200 == 1:
        return "deferred", "quiet_hours", lay.now + timedelta(minutes=30)
    return pick(OUTCOMES, (h >> 12) % 100), None, None


def message_row(n: int, lay: Layout) -> tuple[Any, ...]:
    """Message ``n`` (0 the oldest) in :data:`COLUMNS`' order: bulk ones belong to a finished
    run in the older half of the timeline and to a running one in the newer half."""
    h = (n * 2654435761) & 0xFFFFFFFF
    p = n / max(lay.messages, 1)
    created = lay.now - timedelta(hours=lay.hours * (1 - p))
    lane = pick(LANES, h % 100)
    runs = (lay.running if p >= 0.5 else lay.finished) if lane == "bulk" else ()
    run, tenant = runs[n % len(runs)] if runs else (None, lay.tenants[n % len(lay.tenants)])
    state, reason, not_before = _state(h, p, lay)
    sent = state not in ("queued", "deferred")
    k, key = (h >> 4) % lay.people, f"bx{n}"
    second = timedelta(seconds=1)
    return (key, key, tenant, lane, f"u{k}", phone(tenant, k), BODY, run, state, reason, int(sent),
            ROUTES[(h >> 16) % 3] if sent else None, f"pm{n}" if state in SETTLED else None, not_before,
            created, created + 2 * second, created + second if sent else None,
            created + 5 * second if state == "delivered" else None, 1 if sent else None)


def chunk(lay: Layout, start: int, stop: int) -> tuple[list[tuple[Any, ...]], dict[int, list[int]]]:
    """Messages ``start`` to ``stop`` and, per run, how many of them there are, settled and final."""
    rows, counts = [message_row(n, lay) for n in range(start, stop)], dict[int, list[int]]()
    for row in rows:
        if row[7] is not None:
            c = counts.setdefault(row[7], [0, 0, 0])
            c[0], c[1], c[2] = c[0] + 1, c[1] + (row[8] in SETTLED), c[2] + (row[8] in FINAL)
    return rows, counts


@dataclass(frozen=True)
class Wave:
    zone: str
    fire_at: datetime
    deadline_at: datetime
    state: str
    released: int
    planned: int
    started_at: datetime | None
    finished_at: datetime | None


def waves_of(released: int, *, first_fire: datetime, running: bool = True) -> list[Wave]:
    """A run's waves, one per zone an hour apart from ``first_fire``: a running run's first two
    done, the third releasing (half of its plan), the fourth pending, ``released`` split
    35/35/30/0; a finished run's all done, split evenly."""
    q = released * (35 if running else 25) // 100
    parts = [q, q, released - 2 * q, 0] if running else [q, q, q, released - 3 * q]
    planned = [q, q, 2 * parts[2], max(released * 3 // 10, 1)] if running else parts
    states, out = ("done", "done", "releasing", "pending") if running else ("done",) * 4, []
    for i, zone in enumerate(ZONES):
        fire = first_fire + timedelta(hours=i)
        out.append(Wave(zone, fire, fire + timedelta(hours=8), states[i], parts[i], planned[i],
                        fire if states[i] != "pending" else None,
                        fire + timedelta(minutes=50) if states[i] == "done" else None))
    return out


def tally_rows(settled: int, final: int, *, now: datetime, recent: int = 120
               ) -> list[tuple[int, int, datetime]]:
    """A run's tally rows as the scheduler leaves them: what settled before the last ``recent``
    seconds folded into one row, then one row a second for the last quarter of it."""
    late_s, late_f = settled // 4, final // 4
    rows = [(settled - late_s, final - late_f, now - timedelta(minutes=10))]
    for i in range(recent):
        rows.append((late_s * (i + 1) // recent - late_s * i // recent,
                     late_f * (i + 1) // recent - late_f * i // recent, now - timedelta(seconds=recent - i)))
    return rows


async def _tenants(conn: asyncpg.Connection, count: int, people: int) -> list[int]:
    ids, consent = [], datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(count):
        tenant, _ = await create_tenant(conn, name=f"Console brand {i} {secrets.token_hex(3)}")
        ids.append(tenant.id)
        await conn.copy_records_to_table(
            "recipients", columns=["tenant_id", "user_id", "phone", "time_zone", "consent_at"],
            records=[(tenant.id, f"u{k}", phone(tenant.id, k), ZONES[k % 4], consent) for k in range(people)])
    return ids


async def _runs(conn: asyncpg.Connection, tenants: Sequence[int], args: argparse.Namespace, now: datetime
                ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``--finished`` finished runs (earlier campaigns), then ``--campaigns`` running ones."""
    running: list[tuple[int, int]] = []
    finished: list[tuple[int, int]] = []
    for i in range(args.finished + args.campaigns):
        tenant, done = tenants[i % len(tenants)], i < args.finished
        fire = now - timedelta(hours=args.hours if done else 2.5)
        cid = await conn.fetchval(
            "INSERT INTO campaigns (tenant_id, name, body, segment, run_at, time_zone, time_mode, max_rate)"
            " VALUES ($1, $2, $3, '{\"everyone\": true}', $4, $5, 'recipient_local', $6) RETURNING id",
            tenant, f"{'Early bird' if done else 'Holiday push'} {i}", BODY, fire.replace(tzinfo=None),
            ZONES[0], RATE)
        rid = await conn.fetchval(
            "INSERT INTO campaign_runs (campaign_id, tenant_id, scheduled_for, first_fire_at, state,"
            " rate_per_s, released_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
            cid, tenant, fire.replace(tzinfo=None), fire, "finished" if done else "running", RATE,
            fire + timedelta(hours=3) if done else None)
        (finished if done else running).append((rid, tenant))
    return running, finished


async def _messages(conn: asyncpg.Connection, lay: Layout) -> dict[int, list[int]]:
    """COPY every message (the next chunk made in a thread meanwhile); per-run counts."""
    bar, counts = ui.task(f"console: {lay.messages:,} messages", lay.messages), dict[int, list[int]]()
    made = asyncio.create_task(asyncio.to_thread(chunk, lay, 0, min(CHUNK, lay.messages)))
    for start in range(0, lay.messages, CHUNK):
        rows, part = await made
        if start + CHUNK < lay.messages:
            made = asyncio.create_task(asyncio.to_thread(chunk, lay, start + CHUNK,
                                                         min(start + 2 * CHUNK, lay.messages)))
        await conn.copy_records_to_table("messages", columns=list(COLUMNS), records=rows)
        for run_id, (n, s, f) in part.items():
            c = counts.setdefault(run_id, [0, 0, 0])
            c[0], c[1], c[2] = c[0] + n, c[1] + s, c[2] + f
        ui.step(bar, start + len(rows))
    return counts


async def _progress(conn: asyncpg.Connection, lay: Layout, counts: dict[int, list[int]]) -> None:
    """The finished runs' waves; the running runs' waves, forecast and tallies, as of now."""
    now = datetime.now(UTC)
    for run_id, _ in lay.finished:
        await _waves(conn, run_id, waves_of(counts.get(run_id, [0])[0], running=False,
                                            first_fire=now - timedelta(hours=lay.hours)))
    for run_id, _ in lay.running:
        released, settled, final = counts.get(run_id, [0, 0, 0])
        waves = waves_of(released, first_fire=now - timedelta(hours=2.5))
        plan = forecast([WavePlan(w.zone, w.fire_at, w.planned, w.deadline_at) for w in waves], RATE)
        doc = {"rate_per_s": RATE, "waves": [{k: v.isoformat() if isinstance(v, datetime) else v
                                              for k, v in asdict(w).items()} for w in plan]}
        await conn.execute("UPDATE campaign_runs SET forecast = $2::jsonb WHERE id = $1", run_id,
                           json.dumps(doc))
        await _waves(conn, run_id, waves)
        await conn.copy_records_to_table("campaign_run_tallies", columns=["run_id", "settled", "final", "at"],
                                         records=[(run_id, *t) for t in tally_rows(settled, final, now=now)])


async def _waves(conn: asyncpg.Connection, run_id: int, waves: Sequence[Wave]) -> None:
    await conn.executemany(
        "INSERT INTO campaign_waves (run_id, time_zone, fire_at, deadline_at, state, released,"
        " started_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [(run_id, w.zone, w.fire_at, w.deadline_at, w.state, w.released, w.started_at, w.finished_at)
         for w in waves])


async def _alerts(conn: asyncpg.Connection, tenants: Sequence[int]) -> None:
    """Three alerts firing (a route's, a tenant's, the platform's), fifty resolved before."""
    now, rows = datetime.now(UTC), []
    for i in range(53):
        name, at = ALERTS[i % 3], now - timedelta(minutes=5 + 7 * i)
        rows.append((f"fp{i}", "firing" if i < 3 else "resolved", name,
                     tenants[i % len(tenants)] if i % 3 == 1 else None, ROUTES[0] if i % 3 == 0 else "",
                     json.dumps({"alertname": name}), json.dumps({"summary": f"{name} #{i}"}), at,
                     None if i < 3 else at + timedelta(minutes=3)))
    await conn.executemany(
        "INSERT INTO alerts (fingerprint, status, alertname, tenant_id, provider, labels, annotations,"
        " starts_at, ends_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9)", rows)


_SIZE = "SELECT pg_total_relation_size('messages')"
_SECONDARY = ("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'messages' AND indexname NOT IN"
              " (SELECT conname FROM pg_constraint WHERE conrelid = 'messages'::regclass)")


async def load(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    """The database of the run; what was loaded and how long it took."""
    conn, started = await asyncpg.connect(dsn), time.perf_counter()
    try:
        people = max(100, min(args.messages // (10 * args.tenants), 100_000))
        tenants = await _tenants(conn, args.tenants, people)
        running, finished = await _runs(conn, tenants, args, datetime.now(UTC))
        indexes = await conn.fetch(_SECONDARY)
        for ix in indexes:
            await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
        lay = Layout(args.messages, tenants, running, finished, datetime.now(UTC), args.hours, people,
                     args.fresh)
        counts = await _messages(conn, lay)
        copied = time.perf_counter() - started
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for ix in indexes:
            await conn.execute(ix["indexdef"])
        await _progress(conn, lay, counts)
        await _alerts(conn, tenants)
        await conn.execute("ANALYZE")
        return {"tenants": tenants, "running": running, "recipients_per_tenant": people,
                "copy_s": round(copied, 1), "load_s": round(time.perf_counter() - started, 1),
                "waiting": await conn.fetchval("SELECT count(*) FROM messages WHERE pending"),
                "messages_mb": round(await conn.fetchval(_SIZE) / 2**20)}
    finally:
        await conn.close()

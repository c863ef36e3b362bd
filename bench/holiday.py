"""Scenario 1: a recipient-local holiday campaign released at once, end to end.

Real processes: api, scheduler, N bulk senders, provider-sim (batch mode, high rate limit), on
the embedded broker, a throwaway database and a Redis key prefix. Measures recipients/s from
run-now to the last acceptance in the provider ledger, and checks exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench.common import OUT, Timer
from hexcast.procs import ChildProcess, free_port, hexcast_process, wait_http
from hexcast.settings import Settings, load_settings
from hexcast.tenants import create_tenant
from hexcast.topics import create_topics

__all__ = ["HolidayResult", "ZONES", "load_holiday_audience", "run_holiday"]

#: Mostly US zones, weighted roughly by population, plus a few others.
ZONES = ["America/New_York"] * 5 + ["America/Chicago"] * 3 + ["America/Denver", "America/Phoenix"] + [
    "America/Los_Angeles"] * 3 + ["Pacific/Honolulu", "America/Anchorage", "Europe/London", "Asia/Kolkata"]


@dataclass
class HolidayResult:
    recipients: int
    senders: int
    release_s: float = 0.0
    wall_s: float = 0.0
    rate: float = 0.0
    accepted: int = 0
    duplicates: int = 0
    resubmissions: int = 0
    states: dict[str, int] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)

    @property
    def exactly_once(self) -> bool:
        return self.accepted == self.recipients and self.duplicates == 0


async def load_holiday_audience(dsn: str, count: int) -> tuple[int, str, float]:
    """A tenant, its API key and ``count`` consenting recipients (COPY); returns rows/s too."""
    conn = await asyncpg.connect(dsn)
    try:
        tenant, key = await create_tenant(conn, name=f"holiday-{uuid.uuid4().hex[:6]}")
        consent = datetime(2026, 1, 1, tzinfo=UTC)
        timer = Timer()
        for start in range(0, count, 200_000):
            rows = [(tenant.id, f"u{n}", f"+1{202 + n % 700:03d}{n % 10_000_000:07d}",
                     ZONES[n % len(ZONES)], f"Sam{n % 97}", consent)
                    for n in range(start, min(count, start + 200_000))]
            await conn.copy_records_to_table(
                "recipients", records=rows,
                columns=["tenant_id", "user_id", "phone", "time_zone", "first_name", "consent_at"])
        return tenant.id, key, timer.rate(count)
    finally:
        await conn.close()


def bench_settings(broker_url: str, dsn: str, *, receipts: bool) -> Settings:
    tag = uuid.uuid4().hex[:8]
    api_port, sim_port = free_port(), free_port()
    return load_settings(
        broker_url=broker_url, database_url=dsn, redis_prefix=f"hxbench:{tag}:",
        topic_prefix=f"b{tag}.", app_id=f"hexcast-bench-{tag}", broker_rebalance_timeout=2.0,
        api_port=api_port, api_public_url=f"http://127.0.0.1:{api_port}", sim_port=sim_port,
        provider_url=f"http://127.0.0.1:{sim_port}", sim_rate_per_s=1e9, sim_receipts=receipts,
        provider_rate_per_s=1e6, provider_burst=1e5, sender_bulk_share=1.0, log_level="warning",
    )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _states(dsn: str, run_id: int) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT state::text, count(*) AS n, count(DISTINCT message_key) AS k"
                                " FROM messages WHERE campaign_run_id = $1 GROUP BY 1", run_id)
        return {r["state"]: r["n"] for r in rows}
    finally:
        await conn.close()


def _start(settings: Settings, senders: int) -> dict[str, ChildProcess]:
    OUT.mkdir(parents=True, exist_ok=True)
    names = {"provider-sim": ["provider-sim"], "api": ["api"], "scheduler": ["scheduler"]}
    names |= {f"sender-bulk-{n}": ["sender", "--lane", "bulk"] for n in range(senders)}
    env = settings.to_env()
    children = {name: hexcast_process(name, args, env=env, log_dir=OUT) for name, args in names.items()}
    for child in children.values():
        child.spawn()
    wait_http(f"{settings.provider_url}/health", child=children["provider-sim"])
    wait_http(f"{settings.api_public_url}/health", child=children["api"])
    return children


def _wait_accepted(sim: httpx.Client, target: int, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    with Progress(TextColumn("accepted"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task("send", total=target)
        while time.monotonic() - started < timeout:
            stats: dict[str, Any] = sim.get("/ledger/stats").json()
            bar.update(task, completed=stats["total"])
            if stats["total"] >= target:
                return int(stats["total"]), time.monotonic()
            time.sleep(0.5)
    return int(stats["total"]), time.monotonic()


def run_holiday(broker_url: str, dsn: str, *, recipients: int, senders: int, receipts: bool = False,
                timeout: float = 1800) -> HolidayResult:
    """Load the audience, start the processes, run the campaign now, wait for the ledger."""
    settings = bench_settings(broker_url, dsn, receipts=receipts)
    asyncio.run(create_topics(settings))
    _, key, _ = asyncio.run(load_holiday_audience(dsn, recipients))
    result = HolidayResult(recipients, senders)
    children = _start(settings, senders)
    try:
        with httpx.Client(base_url=settings.api_public_url, headers={"X-API-Key": key}, timeout=60) as api, \
                httpx.Client(base_url=settings.provider_url, timeout=30) as sim:
            body = {"name": "Black Friday", "body": "{first_name}, Black Friday: 30% off until midnight",
                    "segment": {"everyone": True}, "run_at": "2030-11-27T09:00:00",
                    "time_zone": "America/New_York", "time_mode": "recipient_local"}
            campaign = api.post("/v1/campaigns", json=body).raise_for_status().json()
            started = time.monotonic()
            run_id = api.post(f"/v1/campaigns/{campaign['id']}/run-now").raise_for_status().json()["id"]
            result.accepted, finished = _wait_accepted(sim, recipients, timeout)
            result.wall_s = finished - started
            result.rate = result.accepted / result.wall_s
            stats = sim.get("/ledger/stats").json()
            result.duplicates = stats["total"] - stats["unique_destinations"]  # a phone reached twice
            result.resubmissions = stats["duplicates_rejected"]  # deduped by client reference
            runs = api.get(f"/v1/campaigns/{campaign['id']}/runs").json()
            result.release_s = _release_seconds(runs[0])
        time.sleep(2.0)  # let the senders commit their last acceptances
        result.states = asyncio.run(_states(dsn, run_id))
        result.rss_mb = {name: _rss_mb(child.pid) for name, child in children.items() if child.alive}
    finally:
        for child in children.values():
            with contextlib.suppress(Exception):
                child.terminate()
    return result


def _release_seconds(run: dict[str, Any]) -> float:
    started, released = run.get("created_at"), run.get("released_at")
    if not started or not released:
        return 0.0
    return (datetime.fromisoformat(released) - datetime.fromisoformat(started)).total_seconds()

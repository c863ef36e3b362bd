"""Scenario 1: a recipient-local holiday campaign released at once, end to end.

Real processes: api, scheduler, N bulk senders, provider-sim (batch mode, high rate limit), on
the embedded broker, a throwaway database and a Redis key prefix. Measures recipients/s from
run-now to the last acceptance in the provider ledger, and checks exactly-once.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from bench import ui
from bench.common import Procs, Timer, bench_settings, rss_mb
from bench.cpu import snapshot
from bench.otp import OtpLoad, OtpReport
from bench.reference import reference_pipeline
from hexcast.core.settings import Settings
from hexcast.core.tenants import create_tenant
from hexcast.core.topics import create_topics

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
    otp: OtpReport | None = None
    reference_rate: float = 0.0  # the plain asyncio pipeline on the same audience, same run
    reference_sent: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per component, run-now → last
    busy: float = 0.0  # the machine's busy share over that interval (1.0 = all cores)
    reference_cpu_s: dict[str, float] = field(default_factory=dict)  # the same, reference pipeline
    reference_busy: float = 0.0

    @property
    def cpu_us_per_recipient(self) -> dict[str, float]:
        return {g: round(s * 1e6 / max(self.accepted, 1), 1) for g, s in self.cpu_s.items()}

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


async def _states(dsn: str, run_id: int) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT state::text, count(*) AS n, count(DISTINCT message_key) AS k"
                                " FROM messages WHERE campaign_run_id = $1 GROUP BY 1", run_id)
        return {r["state"]: r["n"] for r in rows}
    finally:
        await conn.close()


def _wait_accepted(sim: httpx.Client, target: int, timeout: float, otp: OtpLoad) -> tuple[int, float]:
    """Poll the ledger until the audience (plus the OTPs posted so far) reached it."""
    started = time.monotonic()
    bar = ui.task(f"holiday: {target:,} in the ledger", target)
    while True:
        stats: dict[str, Any] = sim.get("/ledger/stats").json()
        bulk = int(stats["total"]) - len(otp.posts)
        ui.step(bar, bulk)
        if bulk >= target or time.monotonic() - started > timeout:
            return bulk, time.monotonic()
        time.sleep(0.25)


_BODY = {"name": "Black Friday", "body": "{first_name}, Black Friday: 30% off until midnight",
         "segment": {"everyone": True}, "run_at": "2030-11-27T09:00:00",
         "time_zone": "America/New_York", "time_mode": "recipient_local"}


def _otp_ready(api: httpx.Client, sim: httpx.Client, token: str, limit_s: float = 120) -> None:
    """One OTP through api → broker → otp sender → provider: the stack is up."""
    key = api.post("/v1/messages/otp", headers={"Idempotency-Key": "bench-probe"},
                   json={"phone": "+447700999999", "body": "probe"}).raise_for_status().json()["message_key"]
    deadline = time.monotonic() + limit_s
    auth = {"Authorization": f"Bearer {token}"}
    while sim.get(f"/v1/messages/by-ref/{key}", headers=auth).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the probe OTP never reached provider-sim: is a sender down?")
        time.sleep(0.2)


def _campaign(settings: Settings, key: str, result: HolidayResult, otp_rate: float,
              timeout: float, pids: dict[str, int]) -> int:
    with httpx.Client(base_url=settings.api_public_url, headers={"X-API-Key": key}, timeout=60) as api, \
            httpx.Client(base_url=settings.provider_url, timeout=30) as sim:
        _otp_ready(api, sim, settings.provider_token)
        base = int(sim.get("/ledger/stats").json()["total"])
        campaign = api.post("/v1/campaigns", json=_BODY).raise_for_status().json()
        otp = OtpLoad(settings.api_public_url, key, rate=otp_rate)
        started, cpu = time.monotonic(), snapshot(pids)
        run_id: int = api.post(f"/v1/campaigns/{campaign['id']}/run-now").raise_for_status().json()["id"]
        otp.start()
        try:
            accepted, finished = _wait_accepted(sim, result.recipients + base, timeout, otp)
            result.cpu_s, result.busy = snapshot(pids).since(cpu)
        finally:
            otp.stop()
        result.accepted = accepted - base
        result.wall_s = finished - started
        result.rate = result.accepted / result.wall_s
        time.sleep(1.0)  # the last OTPs
        result.otp = otp.report(settings.provider_url, settings.provider_token)
        stats = sim.get("/ledger/stats").json()
        result.duplicates = stats["total"] - stats["unique_destinations"]  # a phone reached twice
        result.resubmissions = stats["duplicates_rejected"]  # deduped by client reference
        result.release_s = _release_seconds(api.get(f"/v1/campaigns/{campaign['id']}/runs").json()[0])
    return run_id


def _reference(settings: Settings, dsn: str, tenant_id: int, run_id: int, result: HolidayResult,
               pids: dict[str, int]) -> None:
    """The plain asyncio pipeline over the same audience and provider, ledger emptied first."""
    httpx.post(f"{settings.provider_url}/control/reset", timeout=30).raise_for_status()
    bar = ui.task("reference pipeline (plain asyncio)", 1)
    pids = {"reference": os.getpid(), **pids}
    cpu = snapshot(pids)
    result.reference_sent, result.reference_rate = asyncio.run(reference_pipeline(
        dsn, settings.redis_url, settings.provider_url, settings.provider_token,
        tenant_id=tenant_id, run_id=run_id + 1_000_000_000))
    result.reference_cpu_s, result.reference_busy = snapshot(pids).since(cpu)
    ui.step(bar, 1)


def run_holiday(broker_url: str, dsn: str, *, recipients: int, senders: int, receipts: bool = False,
                otp_rate: float = 3.0, reference: bool = True, timeout: float = 0.0) -> HolidayResult:
    """Load the audience, start the processes, run the campaign now (OTPs alongside), wait for
    the ledger; then the reference pipeline on the same audience."""
    settings = bench_settings(broker_url, dsn, receipts=receipts)
    asyncio.run(create_topics(settings))
    bar = ui.task(f"audience: COPY {recipients:,}", 1)
    tenant_id, key, _ = asyncio.run(load_holiday_audience(dsn, recipients))
    ui.step(bar, 1)
    result = HolidayResult(recipients, senders)
    timeout = timeout or max(1800.0, recipients / 500)  # gives up below 500 recipients/s
    with Procs(settings) as procs:
        procs.serve()
        procs.start("scheduler", ["scheduler"])
        for n in range(senders):
            procs.start(f"sender-bulk-{n}", ["sender", "--lane", "bulk"])
        procs.start("sender-otp", ["sender", "--lane", "otp"])
        run_id = _campaign(settings, key, result, otp_rate, timeout,
                           {name: c.pid for name, c in procs.children.items()})
        time.sleep(2.0)  # let the senders commit their last acceptances
        result.states = asyncio.run(_states(dsn, run_id))
        result.rss_mb = {name: rss_mb(c.pid) for name, c in procs.children.items() if c.alive}
        if reference:
            _reference(settings, dsn, tenant_id, run_id, result,
                       {name: c.pid for name, c in procs.children.items() if name == "provider-sim"})
    return result


def _release_seconds(run: dict[str, Any]) -> float:
    started, released = run.get("created_at"), run.get("released_at")
    if not started or not released:
        return 0.0
    return (datetime.fromisoformat(released) - datetime.fromisoformat(started)).total_seconds()

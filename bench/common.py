"""Shared benchmark plumbing: a throwaway database, an audience, a provider-sim process."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from hexcast.db import apply_migrations
from hexcast.procs import ChildProcess, free_port, hexcast_process, wait_http
from hexcast.settings import Settings

__all__ = [
    "Timer",
    "load_audience",
    "machine",
    "provider_sim",
    "throwaway_database",
]

SERVER_DSN = os.environ.get("HEXCAST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
OUT = Path(os.environ.get("HEXCAST_BENCH_OUT", "bench/out"))


def machine() -> str:
    """One line describing where the numbers come from."""
    return (f"{platform.node()} · {os.cpu_count()} cores · {platform.machine()} · "
            f"Python {platform.python_version()}")


@dataclass
class Timer:
    started: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def rate(self, count: int) -> float:
        return count / max(self.seconds, 1e-9)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    """A migrated database for one benchmark run, dropped afterwards."""
    name = f"hexcast_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(SERVER_DSN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    dsn = SERVER_DSN.rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    try:
        yield dsn
    finally:
        conn = await asyncpg.connect(SERVER_DSN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def load_audience(dsn: str, *, count: int, zones: list[str] | None = None) -> tuple[int, float]:
    """A tenant with ``count`` consenting recipients, loaded with COPY; returns (tenant, rows/s)."""
    zones = zones or ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"]
    conn = await asyncpg.connect(dsn)
    try:
        tenant = await conn.fetchval(
            "INSERT INTO tenants (name) VALUES ($1) RETURNING id", f"bench-{uuid.uuid4().hex[:6]}")
        timer = Timer()
        rows = (
            (tenant, f"u{n}", f"+1{202 + n % 700:03d}{2000000 + n % 8_000_000:07d}",
             zones[n % len(zones)], ["retail"], "2026-01-01T00:00:00Z")
            for n in range(count)
        )
        await conn.copy_records_to_table(
            "recipients", records=_typed(rows),
            columns=["tenant_id", "user_id", "phone", "time_zone", "interests", "consent_at"],
        )
        return tenant, timer.rate(count)
    finally:
        await conn.close()


def _typed(rows: Iterator[tuple[object, ...]]) -> Iterator[tuple[object, ...]]:
    from datetime import UTC, datetime

    consent = datetime(2026, 1, 1, tzinfo=UTC)
    for tenant, user, phone, zone, interests, _ in rows:
        yield tenant, user, phone, zone, interests, consent


@contextlib.contextmanager
def provider_sim(settings: Settings, *, rate: float, receipts: bool) -> Iterator[tuple[str, ChildProcess]]:
    """A provider-sim process; returns its URL."""
    port = free_port()
    env = settings.model_copy(update={
        "sim_port": port, "sim_rate_per_s": rate, "sim_receipts": receipts,
    }).to_env()
    OUT.mkdir(parents=True, exist_ok=True)
    child = hexcast_process("provider-sim", ["provider-sim"], env=env, log_dir=OUT)
    child.spawn()
    try:
        wait_http(f"http://127.0.0.1:{port}/health", child=child)
        yield f"http://127.0.0.1:{port}", child
    finally:
        child.terminate()

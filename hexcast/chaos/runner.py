"""One chaos run: a world, the workload, a fault schedule, then the invariants.

``hexcast chaos`` and the CI-sized test call :func:`run_chaos`. The workload starts, faults
happen at their moments while it runs, the clients stop at the end of the window, the run
is given time to settle (every wave released, nothing left queued or sending), and
:func:`hexcast.chaos.invariants.check_invariants` reads PostgreSQL and the provider ledger.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from hexcast.chaos.faults import Fault, each_once, random_plan, rebalance
from hexcast.chaos.invariants import Scope, Verdict, check_invariants
from hexcast.chaos.workload import Driver, Load, Rates, Seeded, seed, start_campaign
from hexcast.chaos.world import KINDS, World
from hexcast.core.db import PG_OUTAGES
from hexcast.core.logging import get_logger

__all__ = ["ChaosConfig", "ChaosResult", "Done", "apply_fault", "chaos_in", "run_chaos", "world_for"]

log = get_logger("hexcast.chaos")


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    recipients: int = 20_000
    seed: int = 1
    window_s: float = 90.0  # faults happen in this window; the clients run as long
    faults: int | None = None  # None: each process kind killed once + one Redis and one PostgreSQL restart
    rebalance: bool = False  # only 1 → 2 → 1 of the bulk sender and the matcher, no other fault
    max_rate: float = 250.0  # the campaign's pace (messages/s)
    rates: Rates = field(default_factory=Rates)
    down_s: float = 3.0  # how long PostgreSQL and Redis stay down
    settle_s: float = 240.0  # at most this long for the run to settle after the window
    quiet_hours: bool = True
    partitions: int = 2

    def schedule(self) -> list[Fault]:
        if self.rebalance:
            return rebalance(window_s=self.window_s)
        if self.faults is None:
            return each_once(self.seed, window_s=self.window_s, kinds=list(KINDS))
        return random_plan(self.seed, window_s=self.window_s, count=self.faults, kinds=list(KINDS))


@dataclass(frozen=True, slots=True)
class Done:
    fault: Fault
    at_s: float  # when it started, after the workload started
    took_s: float
    instance: str  # the process it acted on ("" for PostgreSQL and Redis)


@dataclass(frozen=True, slots=True)
class ChaosResult:
    config: ChaosConfig
    seeded: Seeded
    run_id: int
    load: Load
    done: list[Done]
    verdict: Verdict
    dead: list[str]  # processes that exited by themselves
    seconds: float  # workload start to settled
    settled: bool
    sent: int  # the campaign's messages a provider accepted
    sending_s: float  # the run's first message row to its last acceptance

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.sending_s if self.sending_s > 0 else 0.0


def apply_fault(world: World, fault: Fault, down_s: float) -> str:
    """Do ``fault`` to the world (blocking); returns the process it acted on."""
    if fault.kind == "postgres":
        world.restart_postgres(down_s)
        return ""
    if fault.kind == "redis":
        world.restart_redis(down_s)
        return ""
    if fault.kind == "add":
        return world.add(fault.target)
    name = next(n for n, k in world.kinds.items() if k == fault.target)  # the oldest of its kind
    if fault.kind == "remove":
        world.remove(name)
    else:
        world.kill(name)
    return name


def run_chaos(config: ChaosConfig, state: Path, *, broker_url: str | None = None) -> ChaosResult:
    """Start a world in ``state``, run the workload under the fault schedule, check the
    invariants, stop the world."""
    with world_for(config, state, broker_url=broker_url).started() as world:
        return asyncio.run(chaos_in(world, config))


def world_for(config: ChaosConfig, state: Path, *, broker_url: str | None = None,
              overrides: Mapping[str, object] | None = None) -> World:
    """A world set up as ``config`` asks (quiet hours, partitions), and with ``overrides`` of
    its settings, not started yet."""
    return World(state, broker_url=broker_url, overrides={
        "sender_quiet_hours": config.quiet_hours, "topic_partitions": config.partitions,
        "broker_rebalance_timeout": 2.0, **(overrides or {})})


async def chaos_in(world: World, config: ChaosConfig) -> ChaosResult:
    """One workload under ``config``'s faults in a started world (several may run one after
    another in the same world, each with its own tenant and campaign)."""
    settings = world.live
    seeded = await seed(settings, recipients=config.recipients, tag=uuid.uuid4().hex[:6])
    started_at, started = datetime.now(UTC), time.monotonic()
    run_id = await start_campaign(settings, seeded, max_rate=config.max_rate)
    driver = Driver(settings, seeded, config.rates, seed_value=config.seed, duration_s=config.window_s)
    clients = asyncio.create_task(driver.run())
    done = await _faults(world, config, started)
    await asyncio.sleep(max(0.0, config.window_s - (time.monotonic() - started)))
    driver.stop()
    load = await clients
    settled = await _settled(settings.database_url, run_id, seeded.tenant_id, config.settle_s)
    await _archived(settings.database_url, load.accepted_visits)
    scope = Scope(database_url=settings.database_url, sim_url=settings.provider_url,
                  tenant_ids=(seeded.tenant_id,), run_ids=(run_id,),
                  accepted_visits=tuple(load.accepted_visits), started_at=started_at)
    verdict = await check_invariants(settings, scope)
    sent, sending_s = await _throughput(settings.database_url, run_id)
    return ChaosResult(config=config, seeded=seeded, run_id=run_id, load=load, done=done,
                       verdict=verdict, dead=world.dead(), seconds=time.monotonic() - started,
                       settled=settled, sent=sent, sending_s=sending_s)


async def _faults(world: World, config: ChaosConfig, started: float) -> list[Done]:
    done = []
    for fault in config.schedule():
        await asyncio.sleep(max(0.0, fault.at_s - (time.monotonic() - started)))
        began = time.monotonic()
        log.info("chaos_fault", fault=fault.describe(), at_s=round(began - started, 1))
        instance = await asyncio.to_thread(apply_fault, world, fault, config.down_s)
        done.append(Done(fault, round(began - started, 2), round(time.monotonic() - began, 2), instance))
    return done


async def _row(dsn: str, sql: str, *args: object) -> asyncpg.Record | None:
    """One row of ``sql`` on a connection of its own; None while PostgreSQL is down (a
    fault may just have restarted it: the waits below poll through that)."""
    try:
        conn = await asyncpg.connect(dsn)
    except PG_OUTAGES:
        return None
    try:
        row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
        return row
    except PG_OUTAGES:
        return None
    finally:
        await conn.close()


_ARCHIVED = "SELECT count(DISTINCT event_id) AS n FROM visits WHERE event_id = ANY($1::text[])"


async def _archived(dsn: str, accepted: list[str], *, quiet_s: float = 20.0) -> None:
    """Wait until every accepted visit is in the visit history, or until none was added for
    ``quiet_s`` seconds (the archiver may be catching up after a restart; what it never stores
    must have been dead-lettered, which the invariant checks)."""
    stored, still_since = -1, time.monotonic()
    while time.monotonic() - still_since < quiet_s:
        row = await _row(dsn, _ARCHIVED, accepted)
        now_stored = stored if row is None else int(row["n"])
        if now_stored >= len(accepted):
            return
        if now_stored != stored:
            stored, still_since = now_stored, time.monotonic()
        await asyncio.sleep(1.0)


_THROUGHPUT = """
SELECT count(sent_at) AS sent,
       coalesce(extract(epoch FROM max(sent_at) - min(created_at)), 0)::float8 AS seconds
FROM messages WHERE campaign_run_id = $1
"""


async def _throughput(dsn: str, run_id: int) -> tuple[int, float]:
    row = await _row(dsn, _THROUGHPUT, run_id)
    return (row["sent"], row["seconds"]) if row is not None else (0, 0.0)


_UNSETTLED = """
SELECT (SELECT count(*) FROM campaign_waves WHERE run_id = $1 AND state <> 'done') AS waves,
       (SELECT coalesce(sum(released), 0) FROM campaign_waves WHERE run_id = $1) AS released,
       (SELECT count(*) FROM messages WHERE campaign_run_id = $1) AS rows,
       (SELECT count(*) FROM messages WHERE tenant_id = $2 AND state IN ('queued', 'sending')) AS busy
"""


async def _settled(dsn: str, run_id: int, tenant_id: int, timeout_s: float) -> bool:
    """Wait until every wave is released, every released recipient has a message row and no
    message of the tenant is queued or sending (deferred ones wait for their hour)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = await _row(dsn, _UNSETTLED, run_id, tenant_id)
        if row is not None and row["waves"] == 0 and row["rows"] >= row["released"] and not row["busy"]:
            return True
        await asyncio.sleep(1.0)
    return False

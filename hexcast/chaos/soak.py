"""``hexcast soak``: hours of the chaos workload without kills, with provider faults, sampled
every minute; a report at the end, failing on a leak or a broken invariant.

The load is steady: visits, OTPs, transactional sends and STOP replies at their rates, and a
campaign to the whole audience every ``campaign_every_s`` (paced by its max rate), so the
senders, scheduler and matcher never go idle for long. Every ``provider_fault_every_s`` the
provider simulator misbehaves for a while, in turn: slow answers, a 5xx burst, a 429 storm,
delayed receipts. Samples go to ``samples.jsonl`` as they are taken (a crash keeps them).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from hexcast.chaos.invariants import Scope, Verdict, check_invariants
from hexcast.chaos.report import leaks, write_report
from hexcast.chaos.sampling import Sample, Sampler, append_sample
from hexcast.chaos.workload import Driver, Rates, Seeded, seed, start_campaign
from hexcast.chaos.world import World
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings

__all__ = ["PROVIDER_FAULTS", "SoakConfig", "SoakResult", "healthy", "soak_in"]

log = get_logger("hexcast.soak")

PROVIDER_FAULTS: list[tuple[str, dict[str, object], float]] = [
    ("slow answers (800 ms)", {"latency_ms": 800}, 60.0),
    ("5xx burst (40 % of requests)", {"fail_rate": 0.4}, 30.0),
    ("429 storm (50 destinations/s)", {"rate_per_s": 50.0}, 60.0),
    ("receipts 30 s late", {"dlr_delay_s": 30.0}, 120.0),
]
"""What the simulator does in turn: (what, ``/control`` change, seconds it lasts)."""


def healthy(settings: Settings) -> dict[str, object]:
    """The simulator's ``/control`` values a fault changes, as the world started it."""
    return {"latency_ms": 0, "fail_rate": 0.0, "rate_per_s": settings.sim_rate_per_s,
            "dlr_delay_s": settings.sim_dlr_delay_s}


@dataclass(frozen=True, slots=True)
class SoakConfig:
    duration_s: float = 4 * 3600.0
    sample_every_s: float = 60.0
    recipients: int = 20_000
    campaign_every_s: float = 900.0
    max_rate: float = 50.0
    provider_fault_every_s: float = 300.0
    seed: int = 1
    rates: Rates = field(default_factory=lambda: Rates(visits_per_s=10.0, otps_per_s=0.5,
                                                        transactional_per_s=0.5, stops=200))


@dataclass(frozen=True, slots=True)
class SoakResult:
    samples: list[Sample]
    faults: list[tuple[float, str]]  # (seconds after start, what)
    campaigns: list[int]  # run ids
    verdict: Verdict
    leaks: list[str]
    dead: list[str]
    readme: Path

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.leaks and not self.dead


async def soak_in(world: World, config: SoakConfig, out: Path) -> SoakResult:
    """Run the soak in a started world; write the samples and the report to ``out`` (which
    must exist)."""
    settings = world.live
    seeded = await seed(settings, recipients=config.recipients, tag=uuid.uuid4().hex[:6])
    started_at, started = datetime.now(UTC), time.monotonic()
    driver = Driver(settings, seeded, config.rates, seed_value=config.seed, duration_s=config.duration_s)
    clients = asyncio.create_task(driver.run())
    runs: list[int] = []
    faults: list[tuple[float, str]] = []
    samples: list[Sample] = []
    tasks = [asyncio.create_task(_campaigns(settings, seeded, config, runs)),
             asyncio.create_task(_provider_faults(settings, config, faults, started)),
             asyncio.create_task(_sampling(world, config, out / "samples.jsonl", samples))]
    await asyncio.sleep(config.duration_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    driver.stop()
    load = await clients
    async with httpx.AsyncClient(base_url=settings.provider_url, timeout=10) as sim:
        await sim.post("/control", json=healthy(settings))
    scope = Scope(database_url=settings.database_url, sim_url=settings.provider_url,
                  tenant_ids=(seeded.tenant_id,), run_ids=tuple(runs),
                  accepted_visits=tuple(load.accepted_visits), started_at=started_at)
    verdict = await check_invariants(settings, scope)
    found = leaks(samples)
    facts = {"duration": f"{config.duration_s / 3600:.2f} h", "campaigns": str(len(runs)),
             "messages handled": f"{sum(samples[-1].messages_by_state.values()):,}" if samples else "0",
             "visits accepted": f"{len(load.accepted_visits):,}", "OTPs": str(load.otps),
             "transactional": str(load.transactional), "STOP replies": str(len(load.stops)),
             "provider faults": str(len(faults)), "leaks": "; ".join(found) or "none",
             "processes that exited": ", ".join(world.dead()) or "none"}
    readme = await asyncio.to_thread(write_report, out, samples, title="hexcast soak", facts=facts,
                                     invariants_markdown=verdict.markdown() + _fault_table(faults))
    return SoakResult(samples=samples, faults=faults, campaigns=runs, verdict=verdict, leaks=found,
                      dead=world.dead(), readme=readme)


async def _campaigns(settings: Settings, seeded: Seeded, config: SoakConfig, runs: list[int]) -> None:
    while True:
        runs.append(await start_campaign(settings, seeded, max_rate=config.max_rate))
        await asyncio.sleep(config.campaign_every_s)


async def _provider_faults(settings: Settings, config: SoakConfig, done: list[tuple[float, str]],
                           started: float) -> None:
    async with httpx.AsyncClient(base_url=settings.provider_url, timeout=10) as sim:
        n = 0
        while True:
            await asyncio.sleep(config.provider_fault_every_s)
            what, change, lasts_s = PROVIDER_FAULTS[n % len(PROVIDER_FAULTS)]
            n += 1
            log.info("soak_provider_fault", fault=what)
            done.append((round(time.monotonic() - started, 1), what))
            await sim.post("/control", json=change)
            try:
                await asyncio.sleep(lasts_s)
            finally:
                await sim.post("/control", json=healthy(settings))


async def _sampling(world: World, config: SoakConfig, path: Path, samples: list[Sample]) -> None:
    sampler = Sampler(world.live)
    try:
        while True:
            try:
                sample = await sampler.sample(world.pids())
            except Exception as exc:  # a sample that fails is skipped, the soak goes on
                log.warning("soak_sample_failed", error=f"{type(exc).__name__}: {exc}")
            else:
                samples.append(sample)
                append_sample(path, sample)
            await asyncio.sleep(config.sample_every_s)
    finally:
        await sampler.close()


def _fault_table(faults: Sequence[tuple[float, str]]) -> str:
    rows = "\n".join(f"| {at / 60:.1f} | {what} |" for at, what in faults)
    return f"\n\n## Provider faults\n\n| at (min) | fault |\n|---:|---|\n{rows}\n"

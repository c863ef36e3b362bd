"""Scenario 2: a visit burst against 10,000 stores / 50,000 promotions over a real metro area.

Real processes (api, matchers, geo sender, provider-sim, a no-op faust agent) on the embedded
broker; the load generator is a separate process (``bench.loadgen``). Phases, one topic set:

1. burst of 20-event posts (one record per user) → visits/s accepted;
2. one matcher, then two, over that backlog (events already in the broker) → visits/s matched;
3. burst of posts of 20 single-user events (1-event records) → accepted; a no-op faust agent
   and one matcher over that backlog → records/s each;
4. steady load at ``rate`` visits/s with a matcher and a geo sender running → p50/p99 API
   accept → send request emitted, and → provider ledger.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import ui
from bench.common import OUT, Procs, Timer, bench_settings
from bench.geo import GeoWorld, load_world
from bench.inproc import inprocess_limits
from bench.kafka import Ends, Group
from bench.latency import Collector, LatencyReport, latency_report, ledger_since
from bench.loadgen import EVENTS_PER_POST, LoadPlan
from bench.noop import OUT_TOPIC
from hexcast.core.kafka import TopicSpec, ensure_topics
from hexcast.core.settings import Settings
from hexcast.core.topics import create_topics
from hexcast.devstack.procs import wait_http
from hexcast.ops import sync_catalog
from sender.models import Lane
from streams.service import visit_key

__all__ = ["VisitsResult", "run_visits"]


@dataclass
class VisitsResult:
    visits: int
    stores: int = 0
    promotions: int = 0
    users: int = 0
    load_s: float = 0.0
    accepted: dict[str, float] = field(default_factory=dict)  # visits/s by post shape
    matched: dict[str, float] = field(default_factory=dict)  # visits/s by setup
    records_per_s: dict[str, float] = field(default_factory=dict)  # matcher vs no-op, 1-event
    latency: dict[str, Any] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  # how each rate was timed
    inprocess: dict[str, float] = field(default_factory=dict)  # index lookup / match, no broker

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_BACKLOG_WORTH_MEASURING = 100_000
"""Visits per burst from which latency is also measured behind the bursts' backlog."""


class _Run:
    def __init__(self, settings: Settings, procs: Procs, world: GeoWorld, visits: int) -> None:
        self.s = settings
        self.procs = procs
        self.world = world
        self.visits = visits
        self.reserved = world.users // 5  # the last fifth: latency phase and probes, each once
        self.next_user = world.users - self.reserved
        self.timings: dict[str, dict[str, float]] = {}

    def users(self, count: int) -> tuple[int, int]:
        """A fresh range of never-posted user ids (so latency-phase keys are unique)."""
        if self.next_user + count > self.world.users:
            raise RuntimeError(f"not enough users for the latency phase: raise --users above "
                               f"{5 * (self.next_user + count - self.world.users + self.reserved):,}")
        start, self.next_user = self.next_user, self.next_user + count
        return start, count

    async def load(self, *, per_user: int, visits: int, rate: float = 0.0, users: int | None = None,
                   label: str = "") -> dict[str, Any]:
        # bursts: any of the first four fifths of the users; steady load: fresh ones
        offset, count = self.users(users) if users else (0, self.world.users - self.reserved)
        argv = [sys.executable, "-m", "bench.loadgen", "--api", self.s.api_public_url,
                "--key", self.world.api_key, "--spots", str(OUT / "spots.json"), "--visits", str(visits),
                "--users", str(count), "--user-offset", str(offset), "--per-user", str(per_user),
                "--rate", str(rate)]
        task = ui.task(f"post {label or per_user}", visits)
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        ui.step(task, visits)
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed ({proc.returncode})")
        result: dict[str, Any] = json.loads(out)
        return result


async def _tail_group(run: _Run, role: str, tag: str, topic: str = "visits") -> None:
    """Commit ``topic``'s end offsets for group ``tag``'s ``role``: it starts after the backlog."""
    settings = run.s.model_copy(update={"app_id": f"{run.s.app_id}-{tag}"})
    async with Group(run.s.bootstrap_servers, f"{settings.app_id}-{role}", run.s.topic(topic)) as g:
        await g.start_at_end()


async def _measure(run: _Run, role: str, tag: str, *, events: int, count: int = 1,
                   argv: list[str] | None = None) -> float:
    """Start ``count`` workers of group ``tag`` over the backlog from its committed offsets (none:
    the beginning) to the end; returns visits/s (records/s × ``events`` per record)."""
    # Its own Redis prefix too: a group that met the cooldowns and caps an earlier group set
    # would emit almost nothing, and its first-to-last output window would not time its work.
    settings = run.s.model_copy(update={"app_id": f"{run.s.app_id}-{tag}",
                                        "redis_prefix": f"{run.s.redis_prefix}{tag}:"})
    output = run.s.topic(OUT_TOPIC if role == "noop" else Lane.GEO.topic)
    async with Group(run.s.bootstrap_servers, f"{settings.app_id}-{role}", run.s.topic("visits")) as g, \
            Ends(run.s.bootstrap_servers, output) as out:
        target = await g.total()
        names = [f"{role}-{tag}-{n}" for n in range(count)]
        for name in names:
            run.procs.start(name, [role], settings=settings, argv=argv)
        bar = ui.task(f"{count} {role}, {events}-event records", target)
        try:
            result = await g.follow(target, output=out, limit_s=max(600.0, target / 200),
                                    tick=lambda n: ui.step(bar, n))
        finally:
            for name in names:
                run.procs.stop(name)
    run.timings[f"{count} {role}, {events}-event records"] = {
        "records": result.target - result.start, "span_s": result.span_s,
        "output_span_s": result.end_t - result.first_t, "committed_s": result.committed_s,
        "polled_s": result.polled_s, "visits_per_s_polled": result.polled_per_s * events}
    return result.records_per_s * events


async def _probe_until_sent(run: _Run, sim: httpx.AsyncClient, collector: Collector,
                            limit_s: float = 300) -> None:
    """Post single walks (unmeasured) until one of them came out of the matcher and reached the
    provider ledger: both workers are up (a full catalog takes the matcher ~30 s to load)."""
    offset, count = run.users(200)
    plan = LoadPlan(json.loads((OUT / "spots.json").read_text()), users=count, user_offset=offset,
                    per_user=EVENTS_PER_POST, seed=99)
    mine = {visit_key(run.world.tenant_id, plan.user(n)).encode() for n in range(count)}
    deadline = time.monotonic() + limit_s
    auth = {"Authorization": f"Bearer {run.s.provider_token}"}
    async with httpx.AsyncClient(base_url=run.s.api_public_url, timeout=30,
                                 headers={"X-API-Key": run.world.api_key}) as api:
        for n in range(count):
            (await api.post("/v1/visits", json=plan.post(n, datetime.now(UTC)))).raise_for_status()
            await asyncio.sleep(1.0)
            # only the probes' own sends: the collector may also see the tail of earlier phases
            for key in [k for k, visit in collector.keys.items() if visit in mine]:
                if (await sim.get(f"/v1/messages/by-ref/{key}", headers=auth)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                break
    raise RuntimeError("no probe visit reached the provider ledger: is the matcher or sender down?")


async def _drain(sim: httpx.AsyncClient, collector: Collector, quiet_s: float = 3.0) -> None:
    """Wait until neither the send topic nor the ledger grew for ``quiet_s`` seconds."""
    last: tuple[int, int] = (-1, -1)
    stable_since = time.monotonic()
    while time.monotonic() - stable_since < quiet_s:
        now = (len(collector.emitted), (await sim.get("/ledger/stats")).json()["total"])
        if now != last:
            last, stable_since = now, time.monotonic()
        await asyncio.sleep(0.5)


async def _latency(run: _Run, tag: str, *, rate: float, seconds: float) -> LatencyReport:
    """Steady load through the api with one matcher and one geo sender of group ``tag``
    running, on ``run``'s topics."""
    settings = run.s.model_copy(update={"app_id": f"{run.s.app_id}-{tag}"})
    await _tail_group(run, "matcher", tag)
    await _tail_group(run, "sender-geo", tag, topic=Lane.GEO.topic)  # not the bursts' sends
    run.procs.start("matcher-lat", ["matcher"], settings=settings)
    run.procs.start("sender-geo", ["sender", "--lane", "geo"], settings=settings)
    async with httpx.AsyncClient(base_url=run.s.provider_url, timeout=30) as sim:
        collector = Collector(run.s.bootstrap_servers, run.s.topic("visits"), run.s.topic(Lane.GEO.topic))
        await collector.start()
        try:
            await _probe_until_sent(run, sim, collector)
            await _drain(sim, collector)  # the probes' tail
            base = int((await sim.get("/ledger/stats")).json()["total"])
            collector.clear()
            visits = int(rate * seconds)
            await run.load(per_user=EVENTS_PER_POST, visits=visits, rate=rate,
                           users=visits // EVENTS_PER_POST, label=f"steady {rate:,.0f} visits/s")
            await _drain(sim, collector)
        finally:
            await collector.stop()
        ledger = await ledger_since(sim, base)
    run.procs.stop("matcher-lat", "sender-geo")
    return latency_report(collector, ledger)


async def _latencies(run: _Run, *, rate: float, seconds: float) -> dict[str, Any]:
    """Latency on a fresh topic set, and first behind the bursts' backlog when it is large.

    The embedded broker's produce and fetch slow down with the record batches a partition
    holds (``bench.hops``), and after full-size bursts ``visits`` holds a million small ones.
    The fresh run gives the api, matcher and geo sender a new topic prefix (the catalog
    republished there, the api restarted on it): the product's latency without that. A quick
    check's backlog is too small to matter, so it runs only the fresh one.
    """
    behind = (await _latency(run, "lat", rate=rate, seconds=seconds)
              if run.visits >= _BACKLOG_WORTH_MEASURING else None)
    fresh = run.s.model_copy(update={"topic_prefix": f"{run.s.topic_prefix}latf."})
    await create_topics(fresh)
    await sync_catalog(fresh)
    run.procs.stop("api")
    run.procs.start("api", ["api"], settings=fresh)
    await asyncio.to_thread(wait_http, f"{run.s.api_public_url}/health", child=run.procs.children["api"])
    run.s = fresh  # the last phase: nothing after it uses the bursts' topics
    report = await _latency(run, "latf", rate=rate, seconds=seconds)
    return asdict(report) | {"rate": rate, "seconds": seconds,
                             "behind_backlog": asdict(behind) if behind else None}


async def _phases(run: _Run, result: VisitsResult, *, rate: float, seconds: float) -> None:
    v = run.visits
    posted = await run.load(per_user=EVENTS_PER_POST, visits=v, label="burst, 20-event records")
    result.accepted["20-event records"] = posted["accepted"] / posted["seconds"]
    result.matched["1 matcher, 20-event records"] = await _measure(run, "matcher", "m1", events=20)
    result.matched["2 matchers, 20-event records"] = await _measure(run, "matcher", "m2", events=20,
                                                                    count=2)
    await _tail_group(run, "noop", "noop")
    await _tail_group(run, "matcher", "m1e")
    posted = await run.load(per_user=1, visits=v, label="burst, 1-event records")
    result.accepted["1-event records"] = posted["accepted"] / posted["seconds"]
    noop = [sys.executable, "-m", "bench.noop"]
    result.records_per_s["no-op faust agent"] = await _measure(run, "noop", "noop", events=1, argv=noop)
    result.records_per_s["1 matcher"] = await _measure(run, "matcher", "m1e", events=1)
    result.matched["1 matcher, 1-event records"] = result.records_per_s["1 matcher"]
    result.latency = await _latencies(run, rate=rate, seconds=seconds)


def run_visits(broker_url: str, dsn: str, *, visits: int, stores: int = 10_000, per_store: int = 5,
               users: int = 50_000, rate: float = 1000.0, seconds: float = 15.0) -> VisitsResult:
    """Scenario 2 end to end (see the module docstring)."""
    settings = bench_settings(broker_url, dsn)
    result = VisitsResult(visits - visits % EVENTS_PER_POST)
    asyncio.run(create_topics(settings))
    asyncio.run(ensure_topics(settings.bootstrap_servers, {
        settings.topic(OUT_TOPIC): TopicSpec(partitions=settings.topic_partitions)}))
    bar = ui.task("catalog: generate, COPY, publish", 1)
    timer = Timer()
    world = asyncio.run(load_world(dsn, stores=stores, promotions_per_store=per_store, users=users,
                                   resolution=settings.h3_resolution))
    OUT.mkdir(parents=True, exist_ok=True)
    world.write(OUT / "spots.json")
    asyncio.run(sync_catalog(settings))
    result.load_s = timer.seconds
    ui.step(bar, 1)
    bar = ui.task("in-process index lookup and match", 1)
    result.inprocess = asyncio.run(inprocess_limits(
        dsn, tenant_id=world.tenant_id, spots=[[s.lat, s.lng, s.radius_m] for s in world.stores],
        users=users - users // 5, resolution=settings.h3_resolution))
    ui.step(bar, 1)
    result.stores, result.promotions, result.users = len(world.stores), world.promotions, users
    with Procs(settings) as procs:
        procs.serve()
        run = _Run(settings, procs, world, result.visits)
        asyncio.run(_phases(run, result, rate=rate, seconds=seconds))
        result.timings = run.timings
        procs.stop(*list(procs.children))
        result.rss_mb = dict(procs.peak_rss)
    return result

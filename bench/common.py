"""Shared benchmark plumbing: a throwaway database, an audience, a provider-sim process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hexcast.core.settings import Settings, load_settings
from hexcast.devstack.procs import ChildProcess, free_port, hexcast_process, wait_http
from hexcast.testing import clear_prefixes, throwaway_database_sync

__all__ = [
    "OUT",
    "Procs",
    "Timer",
    "bench_settings",
    "database",
    "rss_mb",
    "fraction",
    "loadavg",
    "machine",
    "percentile",
]

SERVER_DSN = os.environ.get("HEXCAST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
"""The PostgreSQL server the benchmarks make their databases on."""
OUT = Path(os.environ.get("HEXCAST_BENCH_OUT", "bench/out"))


def loadavg() -> str:
    """``/proc/loadavg`` now: other work on the machine contaminates the numbers."""
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def machine() -> str:
    """One line describing where the numbers come from, with the load at that moment."""
    return (f"{platform.node()} · {os.cpu_count()} cores · {platform.machine()} · "
            f"Python {platform.python_version()} · loadavg {loadavg()}")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def fraction(rate: float, limits: Mapping[str, float]) -> tuple[str, float]:
    """The tightest (smallest, positive) limit and ``rate`` as a fraction of it."""
    known = {k: v for k, v in limits.items() if v > 0}
    if not known:
        return "n/a", 0.0
    name = min(known, key=known.__getitem__)
    return name, rate / known[name]


@dataclass
class Timer:
    started: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def rate(self, count: int) -> float:
        return count / max(self.seconds, 1e-9)


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A migrated database on :data:`SERVER_DSN` for one benchmark run, dropped afterwards."""
    with throwaway_database_sync("hexcast_bench_", server=SERVER_DSN) as dsn:
        yield dsn


_PREFIXES: dict[str, set[str]] = {}
"""Redis URL → the key prefixes this process's scenarios used; cleared by :func:`clear_redis`."""


def clear_redis() -> int:
    """Delete every key under the prefixes the scenarios of this run used; how many."""
    removed = sum(asyncio.run(clear_prefixes(sorted(prefixes), url=url, root="hxbench:"))
                  for url, prefixes in _PREFIXES.items())
    _PREFIXES.clear()
    return removed


def bench_settings(broker_url: str, dsn: str, *, receipts: bool = False) -> Settings:
    """Settings of one scenario: own topics, consumer groups, Redis prefix and ports; a provider
    that never throttles us; quiet hours off so a run at any hour of the day is comparable."""
    tag = uuid.uuid4().hex[:8]
    api_port, sim_port = free_port(), free_port()
    settings = load_settings(
        broker_url=broker_url, database_url=dsn, redis_prefix=f"hxbench:{tag}:",
        topic_prefix=f"b{tag}.", app_id=f"hexcast-bench-{tag}", broker_rebalance_timeout=2.0,
        api_port=api_port, api_public_url=f"http://127.0.0.1:{api_port}", sim_port=sim_port,
        provider_url=f"http://127.0.0.1:{sim_port}", sim_rate_per_s=1e9, sim_receipts=receipts,
        provider_rate_per_s=1e6, provider_burst=1e5, sender_bulk_share=1.0, log_level="warning",
        sender_quiet_hours=False,
    )
    _PREFIXES.setdefault(settings.redis_url, set()).add(settings.redis_prefix)
    return settings


def rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Procs:
    """The child processes of one scenario; ``with`` stops whatever is still running."""

    def __init__(self, settings: Settings, *, metrics: bool = False) -> None:
        self.settings = settings
        self.metrics = metrics
        self.metrics_urls: dict[str, str] = {}  # with ``metrics``: each child's /metrics
        self.children: dict[str, ChildProcess] = {}
        self.peak_rss: dict[str, float] = {}
        self._spies: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], *, settings: Settings | None = None,
              argv: list[str] | None = None) -> ChildProcess:
        """``hexcast <args>`` (or ``argv``) with the scenario's settings as HEXCAST_* env."""
        env = (settings or self.settings).to_env()
        if self.metrics:
            port = free_port()
            env["HEXCAST_METRICS_PORT"] = str(port)
            self.metrics_urls[name] = f"http://127.0.0.1:{port}/metrics"
        OUT.mkdir(parents=True, exist_ok=True)
        if argv is None:
            child = hexcast_process(name, args, env=env, log_dir=OUT)
        else:
            child = ChildProcess(name, argv, OUT / f"{name}.log", env=env)
        child.spawn()
        self.children[name] = child
        self._profile(name, child)
        return child

    def _profile(self, name: str, child: ChildProcess) -> None:
        """With HEXCAST_BENCH_PROFILE=<substring>[,<substring>...], py-spy records the children
        whose name contains one (collapsed stacks in bench/out/profile-<name>.txt, written when
        the child exits; summarise with ``python -m bench.flame``). HEXCAST_BENCH_PROFILE_FLAGS
        adds py-spy flags (``--threads``: a frame per thread, to tell the loop from the others)."""
        wanted = [w for w in os.environ.get("HEXCAST_BENCH_PROFILE", "").split(",") if w]
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not any(w in name for w in wanted) or not Path(spy).exists():
            return
        self._spies.append(subprocess.Popen(
            [spy, "record", "--pid", str(child.pid), "--rate", "200", "--format", "raw", "--nonblocking",
             "--output", str(OUT / f"profile-{name}.txt"),
             *os.environ.get("HEXCAST_BENCH_PROFILE_FLAGS", "").split()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def serve(self, sim_args: Sequence[str] = ()) -> None:
        """provider-sim (``hexcast provider-sim *sim_args``) and api, waited for."""
        s = self.settings
        sim, api = self.start("provider-sim", ["provider-sim", *sim_args]), self.start("api", ["api"])
        wait_http(f"{s.provider_url}/health", child=sim)
        wait_http(f"{s.api_public_url}/health", child=api)

    def stop(self, *names: str) -> None:
        """SIGTERM the named children, all at once, and wait for them (peak RSS recorded)."""
        doomed = [c for c in (self.children.pop(n, None) for n in names) if c is not None]
        for child in doomed:
            if child.alive:
                self.peak_rss[child.name] = rss_mb(child.pid)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(doomed))) as pool:
            list(pool.map(lambda c: c.terminate(), doomed))

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(*list(self.children))
        for spy in self._spies:  # each ends with its child and writes its file
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=30)

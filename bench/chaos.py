"""Issue 24's benchmark: ``python -m bench chaos`` (not part of ``all``).

The chaos workload twice in one world (``hexcast.chaos``), side by side: first without any
fault, then under ``--faults`` random faults (kills of every process kind, PostgreSQL and
Redis restarts, senders and matchers joining and leaving) drawn by ``--seed``. Each run has its
own tenant and campaign of ``--recipients`` at ``--max-rate``, visits, OTPs, transactional
sends and STOPs for ``--window`` seconds. Reported per run: the campaign's throughput (messages
the provider accepted over the run's first message row → last acceptance), time to settle,
client retries, and every invariant.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import ui
from bench.common import loadavg, machine
from bench.providers import save
from hexcast.chaos.runner import ChaosConfig, ChaosResult, chaos_in, world_for
from hexcast.chaos.workload import Rates

__all__ = ["add_arguments", "markdown", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipients", type=int, default=100_000, help="each run's campaign audience")
    parser.add_argument("--faults", type=int, default=30, help="faults in the second run")
    parser.add_argument("--window", type=float, default=180.0, help="seconds of workload (and faults)")
    parser.add_argument("--max-rate", type=float, default=2000.0, help="the campaigns' max_rate")
    parser.add_argument("--seed", type=int, default=7, help="draws the fault schedule")
    parser.add_argument("--provider-rate", type=float, default=3000.0,
                        help="the provider account's messages/s (the default 200 would make 1M take 2 h)")


def _row(name: str, r: ChaosResult) -> str:
    broken = ", ".join(v.invariant for v in r.verdict.violations) or "none"
    return (f"| {name} | {len(r.done)} | {r.sent:,} | {r.sending_s:,.0f} | {r.sent_per_s:,.0f} |"
            f" {r.seconds:,.0f} | {'yes' if r.settled else 'NO'} | {r.load.retries:,} |"
            f" {', '.join(r.dead) or 'none'} | {broken} |")


def markdown(base: ChaosResult, faulted: ChaosResult) -> str:
    lines = ["| run | faults | campaign sent | sending (s) | sent/s | settled after (s) | settled |"
             " client retries | processes died | invariants broken |",
             "|---|---:|---:|---:|---:|---:|---|---:|---|---|",
             _row("no faults", base),
             _row(f"{len(faulted.done)} faults (seed {faulted.config.seed})", faulted)]
    kinds: dict[str, int] = {}
    for d in faulted.done:
        kinds[d.fault.describe()] = kinds.get(d.fault.describe(), 0) + 1
    lines += ["", "Faults: " + ", ".join(f"{n} × {k}" for k, n in sorted(kinds.items())), "",
              "Invariants of the faulted run:", "", faulted.verdict.markdown()]
    return "\n".join(lines)


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    date, where, started = datetime.now(UTC).isoformat(timespec="seconds"), machine(), time.perf_counter()
    common = {"recipients": args.recipients, "window_s": args.window, "max_rate": args.max_rate,
              "settle_s": 900.0, "rates": Rates(visits_per_s=20.0, stops=30)}
    capacity = {"provider_rate_per_s": args.provider_rate, "sim_rate_per_s": args.provider_rate * 1.5}
    with tempfile.TemporaryDirectory(prefix="hexcast-bench-chaos-") as state, \
            world_for(ChaosConfig(), Path(state), overrides=capacity).started() as world:
        base = asyncio.run(chaos_in(world, ChaosConfig(**common, faults=0, seed=args.seed)))
        ui.console.print(_row("no faults", base))
        faulted = asyncio.run(chaos_in(world, ChaosConfig(**common, faults=args.faults, seed=args.seed)))
    doc = {"date": date, "machine": where, "command": command, "args": vars(args) | {"scenario": "chaos"},
           "wall_s": time.perf_counter() - started, "loadavg_end": loadavg(),
           "runs": [_summary(base), _summary(faulted)], "markdown": markdown(base, faulted)}
    ui.console.print(f"results: {save(doc, 'chaos')}")
    ui.console.print(doc["markdown"])
    return doc


def _summary(r: ChaosResult) -> dict[str, Any]:
    return {"faults": [(d.at_s, d.fault.describe(), d.instance, d.took_s) for d in r.done],
            "sent": r.sent, "sending_s": r.sending_s, "sent_per_s": r.sent_per_s, "seconds": r.seconds,
            "settled": r.settled, "retries": r.load.retries, "dead": r.dead,
            "checked": r.verdict.checked, "violations": [v.detail for v in r.verdict.violations]}

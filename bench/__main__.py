"""`python -m bench all --recipients N` (`make bench`) runs every scenario; see BENCHMARKS.md.

Subcommands: ``all``, ``holiday`` (scenario 1, with scenario 3's OTPs and the reference
pipeline), ``visits`` (scenario 2), ``limits`` (scenario 4's raw limits), ``providers``
(scenario 1 through each provider dialect, side by side; not part of ``all``), ``smpp`` (scenario 1
over SMPP routes beside the HTTP batch adapter, and the SMSC's limit; not part of ``all``),
``outbox`` (scenario 1 for a tenant without and with a subscribed webhook endpoint, with
transactional sends alongside; not part of ``all``), ``forecast`` (scenario 1 capped by a
max_rate: the live projected finish per zone against the actual one; not part of ``all``),
``metrics`` (scenario 1 with every process's /metrics served and scraped, against without,
and one scrape's cost per process; not part of ``all``), ``console`` (the console overview's
server time, first paint in Chromium and SQL plans over millions of messages; not part of
``all``), ``chaos`` (the chaos workload without faults, then under 30 random faults, in one world; not
part of ``all``), ``ordering`` (pure: a Black-Friday
plan's zones released one after another against side by
side; not part of ``all``), ``report`` (rewrite
BENCHMARKS.md's table from bench/out/latest.json). Sizes follow ``--recipients``: visits =
recipients / 5 (5M → 1M, the issue's sizes); below 1M recipients the catalog is 2,000 stores /
10,000 promotions instead of 10,000 / 50,000, and the holiday runs with one bulk sender only,
so a quick check stays quick.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import chaos, console, forecast, metrics, ordering, outbox, providers, smpp, ui, webhooks
from bench.common import OUT, clear_redis, database, loadavg, machine
from bench.holiday import run_holiday
from bench.limits import run_limits
from bench.report import save, table, write_markdown
from bench.visits import run_visits
from hexcast.core.logging import configure_logging
from hexcast.devstack.broker import EmbeddedBroker

BENCHMARKS = Path("BENCHMARKS.md")


def _sizes(args: argparse.Namespace) -> dict[str, Any]:
    full = args.recipients >= 1_000_000
    visits = args.visits or max(4_000, args.recipients // 5)
    senders = args.senders or ("1,2" if full else "1")
    return {
        "recipients": args.recipients, "senders": [int(s) for s in senders.split(",")],
        "visits": visits, "stores": args.stores or (10_000 if full else 2_000), "promotions_per_store": 5,
        "users": max(10_000, min(visits // 2, 100_000)), "steady_rate": args.rate,
        "steady_s": args.steady_s or (60.0 if full else 10.0), "otp_rate": args.otp_rate,
    }


def _holiday(broker: str, sizes: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for senders in sizes["senders"]:
        with database() as dsn:
            found.append(asdict(run_holiday(broker, dsn, recipients=sizes["recipients"], senders=senders,
                                            otp_rate=sizes["otp_rate"])))
        _keep({"holiday": found, "sizes": sizes})
    return found


def _keep(partial: dict[str, Any]) -> None:
    """A long run's finished parts, kept in bench/out/partial.json as they finish (a 5M run
    takes an hour; an interruption should not lose the parts already measured)."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "partial.json").write_text(json.dumps(partial, indent=2, default=str))


def _visits(broker: str, sizes: dict[str, Any]) -> dict[str, Any]:
    with database() as dsn:
        return run_visits(broker, dsn, visits=sizes["visits"], stores=sizes["stores"],
                          per_store=sizes["promotions_per_store"], users=sizes["users"],
                          rate=sizes["steady_rate"], seconds=sizes["steady_s"]).as_dict()


def _limits(broker: str, sizes: dict[str, Any]) -> dict[str, Any]:
    with database() as dsn:
        return run_limits(broker, dsn, recipients=sizes["recipients"])


def _run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = _sizes(args)
    started = time.perf_counter()
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": machine(), "command": "python -m bench " + " ".join(sys.argv[1:]),
                               "sizes": sizes}
    wanted = {"all": ("limits", "holiday", "visits")}.get(args.scenario, (args.scenario,))
    steps = {"holiday": _holiday, "visits": _visits, "limits": _limits}
    try:
        with EmbeddedBroker() as broker, ui.live():
            for name in wanted:
                results[name] = steps[name](broker.url, sizes)
    finally:
        clear_redis()  # rate-limit, cap and dedupe keys of every scenario's prefix
    results["wall_s"] = time.perf_counter() - started
    results["loadavg_end"] = loadavg()
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="scenario", required=True)
    for name, text in (("all", "every scenario, then BENCHMARKS.md"), ("holiday", "scenarios 1 and 3"),
                       ("visits", "scenario 2"), ("limits", "scenario 4's raw limits")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--recipients", type=int, default=100_000)
        p.add_argument("--senders", default="", help="comma-separated sender process counts "
                       "(default: 1,2 at ≥ 1M recipients, else 1)")
        p.add_argument("--visits", type=int, default=0, help="default: recipients / 5")
        p.add_argument("--stores", type=int, default=0, help="default: 10,000 at ≥ 1M recipients, else 2,000")
        p.add_argument("--rate", type=float, default=1000.0, help="steady visits/s for the latency phase")
        p.add_argument("--steady-s", type=float, default=0.0, help="latency phase length (60 s / 10 s)")
        p.add_argument("--otp-rate", type=float, default=3.0, help="OTPs/s during the holiday run")
        p.add_argument("--no-markdown", action="store_true", help="do not rewrite BENCHMARKS.md")
    providers.add_arguments(sub.add_parser("providers", help="scenario 1 through each provider dialect"))
    smpp.add_arguments(sub.add_parser("smpp", help="scenario 1 over SMPP routes, and the SMSC's limit"))
    webhooks.add_arguments(sub.add_parser("webhooks", help="tenant webhooks: outbox → receiver events/s"))
    outbox.add_arguments(sub.add_parser("outbox", help="the holiday run without and with a webhook"
                                        " endpoint; transactional latency under it"))
    forecast.add_arguments(sub.add_parser("forecast", help="the live projected finish per zone against"
                                          " the actual one, on a capped holiday run"))
    metrics.add_arguments(sub.add_parser("metrics", help="the holiday run with every process's"
                                         " /metrics served and scraped, and without; scrape cost"))
    console.add_arguments(sub.add_parser("console", help="the console overview's server time, first"
                                         " paint and SQL plans at scale"))
    ordering.add_arguments(sub.add_parser("ordering", help="a run's waves one after another against"
                                          " side by side, on a Black-Friday plan (pure)"))
    chaos.add_arguments(sub.add_parser("chaos", help="the chaos workload without faults, then under"
                                        " N random faults, in one world"))
    report = sub.add_parser("report", help="rewrite BENCHMARKS.md's table from a results JSON")
    report.add_argument("--json", type=Path, default=OUT / "latest.json")
    return parser


OWN_DOCUMENT: dict[str, Any] = {
    "providers": providers,  # scenario 1 through each provider dialect
    "smpp": smpp,  # the same, over SMPP routes
    "webhooks": webhooks,  # outbox → receiver events/s
    "outbox": outbox,  # the outbox's cost, transactional latency
    "forecast": forecast,  # projected vs actual finish per zone
    "metrics": metrics,  # what Prometheus metrics cost
    "console": console,  # the console's first paint at scale
    "chaos": chaos,  # throughput and invariants with and without faults
}


def main() -> None:
    args = _parser().parse_args()
    configure_logging("warning")
    if args.scenario in OWN_DOCUMENT:  # each writes its own document and table (bench/<name>.py)
        ui.console.print(machine())
        OWN_DOCUMENT[args.scenario].run(args, "python -m bench " + " ".join(sys.argv[1:]))
        return
    if args.scenario == "ordering":  # pure: the plan's order against side by side (bench/ordering.py)
        ordering.run(args)
        return
    if args.scenario == "report":
        results = json.loads(args.json.read_text())
    else:
        ui.console.print(machine())
        results = _run(args)
        ui.console.print(f"results: {save(results)}")
    ui.console.print(table(results))
    if args.scenario in ("all", "report") and not getattr(args, "no_markdown", False):
        write_markdown(results, BENCHMARKS)
        ui.console.print(f"{BENCHMARKS} updated")


if __name__ == "__main__":
    main()

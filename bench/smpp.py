"""Issue 20's benchmark: the holiday scenario over one SMPP route, beside the HTTP batch adapter.

Variants, all in one run on one broker, one after the other (order rotated by round, as
:func:`bench.providers.orders` does): the generic batch adapter (the baseline, as in ``bench
providers``), one ``smpp`` route to the simulator's SMSC with every combination of
:data:`BINDS` binds and :data:`WINDOWS` window, and the SMSC's own limit
(:mod:`bench.smsc_flood`: a client in the bench process, one bind, window 50, no sender).

Each route variant is ``bench.providers``' holiday run (fresh database, topics and Redis prefix,
one bulk sender, run-now → last acceptance in the ledger the SMSC shares with the HTTP API).
Receipts are held past the run unless ``--receipts``: the adapter always asks for them
(``registered_delivery`` 1), and the SMSC sends its deliver_sm after the simulator's
``dlr_delay_s`` (held: :data:`~bench.providers.HELD_S`). Exactly once for SMPP also counts
messages the ledger refused as already had (same source, number and text): an SMSC has no
reference of ours to drop a second submit_sm by, so that is a second SMS to the handset.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import ui
from bench.common import bench_settings, clear_redis, database, loadavg, machine
from bench.providers import (
    BASELINE,
    SENDER_ID,
    DialectResult,
    Layout,
    dialect_settings,
    keep,
    markdown,
    orders,
    run_dialect,
    run_holiday_through,
    save,
    table,
)
from bench.smsc_flood import CLIENT, run_limit
from hexcast.core.settings import Settings
from hexcast.devstack.broker import EmbeddedBroker
from hexcast.devstack.procs import free_port

__all__ = [
    "BINDS",
    "LAYOUT",
    "LIMIT",
    "WINDOWS",
    "Variant",
    "add_arguments",
    "run",
    "run_variant",
    "smpp_route",
    "smpp_settings",
    "smsc_submits",
    "variants",
]

BINDS = (1, 2, 4)
WINDOWS = (10, 50)
LIMIT = "SMSC limit (1×50, no sender)"
SYSTEM_ID, PASSWORD = "hexcast", "secret"  # provider-sim --smpp-port's defaults
ROUTE_RATE = 100_000.0
"""The route's rate_per_s: far above what one machine sends, so the route never paces a run."""


@dataclass(frozen=True)
class Variant:
    """One row of the run: the baseline, an SMPP route (``binds`` × ``window``) or the limit."""

    name: str
    binds: int = 0  # 0: not an SMPP route
    window: int = 0

    @property
    def smpp(self) -> bool:
        return self.binds > 0 and self.name != LIMIT


def variants(binds: tuple[int, ...] = BINDS, windows: tuple[int, ...] = WINDOWS) -> list[Variant]:
    """The baseline first, then each binds × window route, then the SMSC's limit."""
    routes = [Variant(f"smpp {b}×{w}", b, w) for b in binds for w in windows]
    return [Variant(BASELINE), *routes, Variant(LIMIT, 1, 50)]


def smpp_route(port: int, binds: int, window: int) -> dict[str, Any]:
    """The route to the simulator's SMSC, as an operator would write it."""
    return {"name": "smsc-route", "kind": "smpp", "url": f"smpp://127.0.0.1:{port}",
            "account": SYSTEM_ID, "token": PASSWORD, "sender_id": SENDER_ID,
            "rate_per_s": ROUTE_RATE, "smpp": {"binds": binds, "window": window}}


def smpp_settings(base: Settings, variant: Variant, port: int, *, receipts: bool) -> Settings:
    """``base`` with the senders routed to the SMSC on ``port`` only; the SMSC's receipts after
    half a second, or held past the run (the same delay setting as the HTTP dialects')."""
    spec = smpp_route(port, variant.binds, variant.window)
    held = dialect_settings(base, BASELINE, receipts=receipts)
    return held.model_copy(update={"provider_name": spec["name"], "sender_providers": json.dumps([spec])})


def smsc_submits(sim: httpx.Client) -> int:
    """submit_sm the SMSC answered so far (what ``requests`` counts for an SMPP route)."""
    return int(sim.get("/smpp/stats").json().get("submits", 0))


def run_variant(broker_url: str, variant: Variant, *, recipients: int, round_no: int = 0,
                receipts: bool = False) -> DialectResult:
    """One variant on its own database (the limit needs none but gets one, as the others)."""
    with database() as dsn:
        if variant.name == LIMIT:
            return run_limit(broker_url, dsn, LIMIT, count=recipients, round_no=round_no,
                             window=variant.window)
        if not variant.smpp:
            return run_dialect(broker_url, dsn, variant.name, recipients=recipients,
                               round_no=round_no, receipts=receipts)
        port = free_port()
        settings = smpp_settings(bench_settings(broker_url, dsn, receipts=True), variant, port,
                                 receipts=receipts)
        result = run_holiday_through(settings, dsn, DialectResult(variant.name, round_no, recipients),
                                     sim_args=("--smpp-port", str(port)), requests=smsc_submits)
    result.duplicates += result.resent
    return result


LAYOUT = Layout("SMPP routes beside the HTTP batch adapter", "route", targets=False,
                senders=("sender-bulk-0", CLIENT))
"""The table: no target column; *requests* are HTTP requests for generic and submit_sm for
SMPP; the limit's *sender* is the bench client's event loop."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``smpp`` subcommand's options."""
    parser.add_argument("--recipients", type=int, default=20_000,
                        help="per variant (the limit submits as many messages)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every variant, order rotated")
    parser.add_argument("--receipts", action="store_true",
                        help="receipts half a second after acceptance (deliver_sm for SMPP)")


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Every variant in every round on an embedded broker; the results document (also saved)."""
    by_name = {v.name: v for v in variants()}
    doc: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                           "command": command, "recipients": args.recipients, "rounds": args.rounds,
                           "receipts": args.receipts}
    started, results = time.perf_counter(), []
    try:
        with EmbeddedBroker() as broker, ui.live():
            for n, order in enumerate(orders(list(by_name), max(1, args.rounds))):
                for name in order:
                    results.append(run_variant(broker.url, by_name[name], recipients=args.recipients,
                                               round_no=n, receipts=args.receipts))
                    keep(results, "smpp")
    finally:
        clear_redis()
    doc |= {"wall_s": time.perf_counter() - started, "loadavg_end": loadavg(),
            "results": [asdict(r) for r in results], "markdown": markdown(results, LAYOUT)}
    ui.console.print(f"results: {save(doc, 'smpp')}")
    ui.console.print(table(results, LAYOUT))
    ui.console.print(doc["markdown"])
    return doc

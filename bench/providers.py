"""Issue 19's benchmark: the holiday scenario through each provider dialect, side by side.

The adapters differ in what one recipient costs: the generic batch API (the baseline) takes a
500-message slice in one request, Sinch one body to up to 1,000 numbers with one per-recipient
parameter (``sender/providers/sinch_batches.py``: a personalised slice is one request), Plivo
one text to up to 1,000 numbers (a slice is one request per distinct text), Twilio one request
per message at the route's concurrency (``sender_single_concurrency``). Each dialect gets the
holiday scenario of ``bench.holiday`` on its own database, topics and Redis prefix (same
audience, same campaign, run-now → last acceptance in the provider ledger, exactly-once from the
ledger), with the simulator speaking that provider's API and the sender routed to it as an
operator would route a real account. All of them run in one process on one broker, one after the
other, so the batch dialects can be compared with the generic adapter of the same run: on a
shared 2-core machine, figures from different runs are not comparable (see BENCHMARKS.md).

Delivery receipts are held (the simulator is given a callback URL, as Sinch requires one for
per-recipient reports, but posts nothing before the run is over), so every dialect is measured
on its send path alone, as scenario 1 is; ``--receipts`` posts them half a second after each
acceptance, in each provider's form, to the api's webhooks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from rich.table import Table

from bench import ui
from bench.alongside import Alongside, Nothing
from bench.common import OUT, Procs, bench_settings, clear_redis, database, loadavg, machine
from bench.cpu import snapshot
from bench.holiday import _BODY, _states, load_holiday_audience
from hexcast.core.settings import Settings
from hexcast.core.topics import create_topics
from hexcast.devstack.broker import EmbeddedBroker
from providersim.dialects.telnyx import public_key

__all__ = [
    "BASELINE",
    "BATCH_DIALECTS",
    "CHILDREN",
    "DEFAULT_DIALECTS",
    "DIALECTS",
    "HEADER",
    "HELD_S",
    "SENDER_ID",
    "DialectResult",
    "Layout",
    "add_arguments",
    "dialect_settings",
    "markdown",
    "side_by_side",
    "orders",
    "keep",
    "ledger_requests",
    "route",
    "rows",
    "run",
    "run_dialect",
    "run_holiday_through",
    "run_providers",
    "save",
    "shares",
    "span",
    "table",
]

R = TypeVar("R", bound="DialectResult")

DEFAULT_DIALECTS = ("generic", "sinch", "plivo", "twilio")
BATCH_DIALECTS = frozenset({"sinch", "plivo"})
"""The dialects the issue's target (≤ 10 % overhead against generic) applies to."""
BASELINE = "generic"
ACCOUNT, TOKEN, SIGNING = "AC0123456789abcdef0123456789abcdef", "bench-route-token", "bench-signing"
SENDER_ID = "+13125550100"
CHILDREN = ("provider-sim", "api", "scheduler", "sender-bulk-0", "sender-otp")
"""The processes of a dialect's run (PostgreSQL, Redis and the broker serve other work on this
machine too, so their CPU is not counted per recipient here)."""
HELD_S = 30 * 86_400.0
"""Receipt delay when receipts are off: past the end of any run."""
ONE_TEXT = "Black Friday: 30% off until midnight"


@dataclass
class DialectResult:
    """One dialect's holiday run: throughput, provider requests, CPU, exactly-once."""

    dialect: str
    round: int
    recipients: int
    accepted: int = 0
    wall_s: float = 0.0
    rate: float = 0.0
    duplicates: int = 0  # ledger entries beyond one per destination
    resent: int = 0  # messages the ledger refused as already had (same reference) during the run
    requests: int = 0  # provider API requests during the run (the probe excluded)
    states: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per component, run-now → last
    busy: float = 0.0
    loadavg_start: str = ""
    loadavg_end: str = ""

    @property
    def exactly_once(self) -> bool:
        return (self.accepted == self.recipients and self.duplicates == 0
                and sum(self.states.values()) == self.recipients)

    def cpu_us(self, *groups: str) -> float:
        """CPU µs per recipient of these components together."""
        return sum(self.cpu_s.get(g, 0.0) for g in groups) * 1e6 / max(self.accepted, 1)


def route(dialect: str, sim_url: str, api_url: str) -> dict[str, Any]:
    """The route to the simulator as an operator would write it for that provider (the
    generic adapter as scenario 1 configures it: no account, no callback URL of its own)."""
    name = f"{dialect}-route"
    spec: dict[str, Any] = {"name": name, "kind": dialect, "url": sim_url, "token": TOKEN}
    if dialect == BASELINE:
        return spec
    spec |= {"account": ACCOUNT, "sender_id": SENDER_ID,
             "callback_url": f"{api_url}/v1/webhooks/providers/{name}"}
    if dialect in ("vonage", "sinch"):
        spec["webhook_key"] = SIGNING  # their callbacks' shared signature secret
    elif dialect == "telnyx":
        spec["webhook_key"] = public_key(SIGNING)  # Ed25519: the simulator signs, the api verifies
    return spec


def dialect_settings(base: Settings, dialect: str, *, receipts: bool) -> Settings:
    """``base`` (a scenario's :func:`~bench.common.bench_settings`) with the simulator speaking
    ``dialect`` and the senders routed to it; receipts held past the run unless ``receipts``."""
    spec = route(dialect, base.provider_url, base.api_public_url)
    return base.model_copy(update={
        "sim_dialect": dialect, "sim_account": ACCOUNT, "provider_token": TOKEN,
        "sim_signing_key": SIGNING, "provider_name": spec["name"], "sim_receipts": True,
        "sim_dlr_delay_s": 0.5 if receipts else HELD_S, "sender_providers": json.dumps([spec]),
    })


def orders(dialects: list[str], rounds: int) -> list[list[str]]:
    """The dialects' order in each round: rotated by one a round, so over as many rounds as
    dialects each one runs once in every position (a machine warming up or slowing down
    during a run then favours none of them)."""
    return [dialects[n % len(dialects):] + dialects[: n % len(dialects)] for n in range(rounds)]


def shares(results: Sequence[DialectResult], base: str = BASELINE) -> dict[str, list[float]]:
    """Each dialect's rate as a fraction of the ``base`` one's in the same round, in round
    order; rounds without a baseline (or a baseline that sent nothing) are left out."""
    baseline = {r.round: r.rate for r in results if r.dialect == base and r.rate > 0}
    found: dict[str, list[float]] = {}
    for r in sorted(results, key=lambda r: r.round):
        if r.round in baseline:
            found.setdefault(r.dialect, []).append(r.rate / baseline[r.round])
    return found


def span(values: list[float], fmt: str) -> str:
    """One value, or the median and the range of several."""
    if len(values) == 1:
        return format(values[0], fmt)
    return (f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}–"
            f"{format(max(values), fmt)})")


@dataclass(frozen=True)
class Layout:
    """What a side-by-side table shows: its title, its first column's name, whether it has the
    batch dialects' target column, and whose CPU the *sender* column counts."""

    title: str = "provider dialects, side by side"
    first: str = "dialect"
    targets: bool = True
    senders: tuple[str, ...] = ("sender-bulk-0",)

    @property
    def header(self) -> list[str]:
        return [self.first, "recipients/s", "of generic", *(["target"] if self.targets else []),
                "requests / 1,000", "sender µs/rcpt", "provider-sim µs/rcpt",
                "processes µs/rcpt · machine", "exactly once"]


DIALECTS = Layout()
HEADER = DIALECTS.header


def rows(results: list[DialectResult], layout: Layout = DIALECTS) -> list[list[str]]:
    """The table, one row per dialect (medians and ranges over rounds): dialect, recipients/s,
    share of generic, target, provider requests per 1,000 recipients, CPU µs per recipient of
    the bulk sender, of provider-sim and of all the run's processes (and how busy the machine
    was), exactly once."""
    of_baseline = shares(results)
    everyone = list(dict.fromkeys((*CHILDREN, *layout.senders)))
    out = []
    for dialect in dict.fromkeys(r.dialect for r in results):
        runs = [r for r in results if r.dialect == dialect]
        share = of_baseline.get(dialect, [])
        target = ["≥ 90%" if dialect in BATCH_DIALECTS else ""] if layout.targets else []
        out.append([
            dialect, span([r.rate for r in runs], ",.0f"),
            span(share, ".0%") if share else "n/a", *target,
            span([r.requests * 1000 / max(r.accepted, 1) for r in runs], ",.0f"),
            span([r.cpu_us(*layout.senders) for r in runs], ",.0f"),
            span([r.cpu_us("provider-sim") for r in runs], ",.0f"),
            span([r.cpu_us(*everyone) for r in runs], ",.0f")
            + f" · {span([r.busy for r in runs], '.0%')} busy",
            "yes" if all(r.exactly_once for r in runs) else "NO: " + "; ".join(
                f"accepted {r.accepted:,}, dup {r.duplicates}, states {r.states}" for r in runs
                if not r.exactly_once),
        ])
    return out


def markdown(results: list[DialectResult], layout: Layout = DIALECTS) -> str:
    """The table in Markdown, for BENCHMARKS.md."""
    lines = ["| " + " | ".join(layout.header) + " |", "|" + "---|" * len(layout.header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows(results, layout)])


def table(results: list[DialectResult], layout: Layout = DIALECTS) -> Table:
    """The same rows for the console."""
    t = Table(title=layout.title)
    for column in layout.header:
        t.add_column(column)
    for row in rows(results, layout):
        t.add_row(*row)
    return t


def _probe(api: httpx.Client, sim: httpx.Client, limit_s: float = 120) -> dict[str, Any]:
    """One OTP through api → broker → otp sender → provider, found in the ledger by count
    (only the generic dialect can look a message up by our reference); the ledger's stats."""
    before = int(sim.get("/ledger/stats").json()["total"])  # an ``Alongside``'s own probe
    api.post("/v1/messages/otp", headers={"Idempotency-Key": "bench-probe"},
             json={"phone": "+447700999999", "body": "probe"}).raise_for_status()
    deadline = time.monotonic() + limit_s
    while True:
        stats: dict[str, Any] = sim.get("/ledger/stats").json()
        if stats["total"] > before:
            return stats
        if time.monotonic() > deadline:
            raise RuntimeError("the probe OTP never reached provider-sim: is a sender down?")
        time.sleep(0.2)


def _wait_ledger(sim: httpx.Client, target: int, timeout: float, label: str,
                 others: Callable[[], int]) -> tuple[int, float]:
    """Poll the ledger until it holds ``target`` entries besides ``others()`` (or ``timeout``)."""
    started = time.monotonic()
    bar = ui.task(label, target)
    while True:
        total = int(sim.get("/ledger/stats").json()["total"]) - others()
        ui.step(bar, total)
        if total >= target or time.monotonic() - started > timeout:
            return total, time.monotonic()
        time.sleep(0.1)


def ledger_requests(sim: httpx.Client) -> int:
    """Provider API requests the simulator answered so far (HTTP dialects)."""
    return int(sim.get("/ledger/stats").json()["requests"])


def _campaign(settings: Settings, key: str, result: DialectResult, pids: dict[str, int],
              one_text: bool, requests: Callable[[httpx.Client], int],
              alongside: Alongside, campaign: Mapping[str, Any] | None = None) -> int:
    """Probe, create the campaign (``campaign``'s fields over the holiday's), run it now and
    wait for the ledger; returns the run id. ``requests`` counts the provider requests so far
    (the run's are the difference)."""
    body = {**_BODY, **({"body": ONE_TEXT} if one_text else {}), **(campaign or {})}
    with httpx.Client(base_url=settings.api_public_url, headers={"X-API-Key": key}, timeout=60) as api, \
            httpx.Client(base_url=settings.provider_url, timeout=30) as sim:
        base = _probe(api, sim)
        requests_before = requests(sim)
        created = api.post("/v1/campaigns", json=body).raise_for_status().json()
        started, cpu = time.monotonic(), snapshot(pids)
        run_id: int = api.post(f"/v1/campaigns/{created['id']}/run-now").raise_for_status().json()["id"]
        alongside.start()
        timeout = max(600.0, result.recipients / 100)  # gives up below 100 recipients/s
        total, finished = _wait_ledger(sim, base["total"] + result.recipients, timeout,
                                       f"{result.dialect} (round {result.round + 1})",
                                       alongside.posted)
        result.cpu_s, result.busy = snapshot(pids).since(cpu)
        alongside.stop()
        result.accepted, result.wall_s = total - base["total"], finished - started
        result.rate = result.accepted / result.wall_s
        time.sleep(1.0)  # a late duplicate would still show
        stats = sim.get("/ledger/stats").json()
        result.duplicates = stats["total"] - stats["unique_destinations"]
        result.resent = stats["duplicates_rejected"] - base["duplicates_rejected"]
        result.requests = requests(sim) - requests_before
    return run_id


def run_dialect(broker_url: str, dsn: str, dialect: str, *, recipients: int, round_no: int = 0,
                receipts: bool = False, one_text: bool = False) -> DialectResult:
    """The holiday scenario through ``dialect``: api, scheduler, one bulk sender, an OTP
    sender (for the probe) and provider-sim in that dialect, on a fresh audience."""
    settings = dialect_settings(bench_settings(broker_url, dsn, receipts=True), dialect,
                                receipts=receipts)
    return run_holiday_through(settings, dsn, DialectResult(dialect, round_no, recipients),
                               one_text=one_text)


def run_holiday_through(settings: Settings, dsn: str, result: DialectResult, *,
                        one_text: bool = False, sim_args: Sequence[str] = (),
                        requests: Callable[[httpx.Client], int] = ledger_requests,
                        alongside: Alongside | None = None,
                        campaign: Mapping[str, Any] | None = None,
                        metrics: bool = False) -> DialectResult:
    """The holiday scenario of ``result`` (its audience size, name and round) with
    ``settings``' route: provider-sim (``hexcast provider-sim *sim_args``), api, scheduler, one
    bulk sender and an OTP sender, on a fresh audience in ``dsn``, ``alongside`` beside it, the
    ``campaign`` fields (a ``max_rate``) over the holiday's; with ``metrics`` each process
    serves its /metrics (``procs.metrics_urls``); ``result`` filled in."""
    asyncio.run(create_topics(settings))
    tenant_id, key, _ = asyncio.run(load_holiday_audience(dsn, result.recipients))
    result.loadavg_start = loadavg()
    with Procs(settings, metrics=metrics) as procs:
        procs.serve(sim_args)
        procs.start("scheduler", ["scheduler"])
        procs.start("sender-bulk-0", ["sender", "--lane", "bulk"])
        procs.start("sender-otp", ["sender", "--lane", "otp"])
        alongside = alongside or Nothing()
        alongside.setup(procs, tenant_id, key)
        run_id = _campaign(settings, key, result, {n: c.pid for n, c in procs.children.items()},
                           one_text, requests, alongside, campaign)
        time.sleep(2.0)  # let the sender commit its last acceptances
        result.states = asyncio.run(_states(dsn, run_id))
        alongside.finish()
    result.loadavg_end = loadavg()
    return result


def run_providers(broker_url: str, *, recipients: int, dialects: list[str], rounds: int = 1,
                  receipts: bool = False, one_text: bool = False) -> list[DialectResult]:
    """Every dialect in every round (see :func:`orders`), each on its own database."""
    results: list[DialectResult] = []
    for n, order in enumerate(orders(dialects, rounds)):
        for dialect in order:
            with database() as dsn:
                results.append(run_dialect(broker_url, dsn, dialect, recipients=recipients, round_no=n,
                                           receipts=receipts, one_text=one_text))
            keep(results)
    return results


def keep(results: Sequence[DialectResult], stem: str = "providers") -> None:
    """The finished runs so far, in bench/out/<stem>-partial.json."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{stem}-partial.json").write_text(json.dumps([asdict(r) for r in results], indent=2))


def save(doc: dict[str, Any], stem: str = "providers") -> Path:
    """bench/out/<stem>-<UTC>.json (never latest.json: that one feeds BENCHMARKS.md's
    generated table, which this scenario is not part of)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{stem}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``providers`` subcommand's options (small by default: one quick side-by-side run)."""
    parser.add_argument("--recipients", type=int, default=20_000, help="per dialect (full size: 5000000)")
    parser.add_argument("--dialects", default=",".join(DEFAULT_DIALECTS),
                        help="comma-separated; generic is the baseline and is always run")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every dialect, order rotated")
    parser.add_argument("--receipts", action="store_true", help="post delivery receipts during the run")
    parser.add_argument("--one-text", action="store_true",
                        help=f"every recipient the text {ONE_TEXT.replace('%', '%%')!r} (default: the"
                        " holiday's, with {first_name}: 97 texts, and a batch dialect needs a request"
                        " per text)")


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The whole scenario on an embedded broker; the results document (also saved)."""
    dialects = list(dict.fromkeys([BASELINE, *[d for d in args.dialects.split(",") if d]]))
    doc: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                           "command": command, "recipients": args.recipients, "rounds": args.rounds,
                           "receipts": args.receipts, "one_text": args.one_text,
                           "twilio_concurrency": Settings.model_fields["sender_single_concurrency"].default}
    started = time.perf_counter()
    try:
        with EmbeddedBroker() as broker, ui.live():
            results = run_providers(broker.url, recipients=args.recipients, dialects=dialects,
                                    rounds=max(1, args.rounds), receipts=args.receipts,
                                    one_text=args.one_text)
    finally:
        clear_redis()
    doc |= {"wall_s": time.perf_counter() - started, "loadavg_end": loadavg(),
            "results": [asdict(r) for r in results], "markdown": markdown(results)}
    ui.console.print(f"results: {save(doc)}")
    ui.console.print(table(results))
    ui.console.print(doc["markdown"])
    return doc


def side_by_side(args: argparse.Namespace, command: str, *, scenario: str, variants: list[str],
                 one: Callable[[str, str, int], R], markdown: Callable[[Sequence[R]], str]
                 ) -> dict[str, Any]:
    """Every variant in every round (``args.rounds``, order rotated: :func:`orders`) on one
    embedded broker, each run by ``one(broker_url, variant, round)``; the results document,
    saved as bench/out/<scenario>-<UTC>.json and printed with ``markdown``."""
    doc: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                           "command": command, "args": vars(args) | {"scenario": scenario}}
    started, results = time.perf_counter(), list[R]()
    try:
        with EmbeddedBroker() as broker, ui.live():
            first = getattr(args, "first_round", 0)  # a bench may resume the rotation
            for n, order in enumerate(orders(variants, first + max(1, args.rounds))):
                if n < first:
                    continue
                for variant in order:
                    results.append(one(broker.url, variant, n))
                    keep(results, scenario)
    finally:
        clear_redis()
    doc |= {"wall_s": time.perf_counter() - started, "loadavg_end": loadavg(),
            "results": [asdict(r) for r in results], "markdown": markdown(results)}
    ui.console.print(f"results: {save(doc, scenario)}")
    ui.console.print(doc["markdown"])
    return doc

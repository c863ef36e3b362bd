"""Issue 21's last two benchmarks: ``python -m bench outbox`` (not part of ``all``).

1. The outbox's cost on the holiday run: scenario 1 (``bench.providers.run_holiday_through``,
   generic route, receipts posted 0.5 s after each acceptance) twice in one process, one run
   for a tenant with no webhook endpoint and one for a tenant with one enabled endpoint
   subscribed to ``message.accepted`` and ``message.delivered`` (written directly, as the API
   refuses 127.0.0.1), pointing at a counting receiver in this process; a ``hexcast webhooks``
   worker runs in both, so the two runs have the same processes. The order is rotated across
   rounds (``bench.providers.orders``).
2. Transactional latency under the bulk run: in both runs, ``POST /v1/messages`` (one message a
   request, an Idempotency-Key each) at ``--tx-rate`` a second from run-now to the campaign's
   last ledger entry, and OTPs at ``--otp-rate`` beside them, each measured as scenario 3 does
   (``bench.otp``): request → the provider ledger's ``accepted_at``. The campaign's
   recipients/s leaves these messages out of its ledger count.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from bench import ui
from bench.common import Procs, bench_settings, database
from bench.otp import OtpLoad, OtpReport
from bench.providers import (
    CHILDREN,
    DialectResult,
    dialect_settings,
    run_holiday_through,
    shares,
    side_by_side,
    span,
)
from bench.webhooks import Counter
from hexcast.core.settings import Settings
from sender.webhooks.signing import new_secret

__all__ = ["BARE", "EVENTS", "HEADER", "SUBSCRIBED", "Beside", "OutboxResult", "add_arguments",
           "latency", "markdown", "rows", "run"]

BARE, SUBSCRIBED = "no endpoint", "one endpoint"
EVENTS = ["message.accepted", "message.delivered"]
PROCESSES = {"sender-transactional": ["sender", "--lane", "transactional"], "webhooks": ["webhooks"]}
"""Started beside scenario 1's own (``bench.providers.CHILDREN``) in both runs."""
HEADER = ["tenant", "recipients/s", "of no endpoint", "outbox rows", "events delivered: at end · drained",
          "sender µs/rcpt", "PostgreSQL µs/rcpt", "webhooks µs/rcpt", "processes µs/rcpt · machine",
          "transactional → ledger ms", "OTP → ledger ms", "exactly once"]


@dataclass
class OutboxResult(DialectResult):
    """One run (``dialect`` is :data:`BARE` or :data:`SUBSCRIBED`)."""

    outbox_rows: int = 0  # the tenant's rows in webhook_outbox when the run ended
    events_at_end: int = 0  # events the receiver had when the campaign was all in the ledger
    events: int = 0  # ... once the outbox drained (or --drain-s passed)
    drain_s: float = 0.0  # campaign's last ledger entry → the receiver had every outbox row
    transactional: OtpReport | None = None
    otp: OtpReport | None = None


class Beside:
    """The endpoint, its worker and the transactional and OTP load of one run
    (a :class:`bench.alongside.Alongside`)."""

    def __init__(self, result: OutboxResult, dsn: str, *, tx_rate: float, otp_rate: float,
                 batch_size: int, drain_s: float) -> None:
        self.result, self.dsn, self.batch_size, self.drain_limit_s = result, dsn, batch_size, drain_s
        self.rates = {"transactional": tx_rate, "otp": otp_rate}
        self.receiver = Counter()
        self.loads: dict[str, OtpLoad] = {}
        self.tenant_id = 0
        self.stopped = 0.0
        self.procs: Procs | None = None

    def setup(self, procs: Procs, tenant_id: int, key: str) -> None:
        self.procs, self.tenant_id = procs, tenant_id
        for name, argv in PROCESSES.items():
            procs.start(name, argv)
        url = self.receiver.serve()
        if self.result.dialect == SUBSCRIBED:
            asyncio.run(self._endpoint(url))
        self.loads = {lane: OtpLoad(procs.settings.api_public_url, key, rate=rate, lane=lane)
                      for lane, rate in self.rates.items() if rate > 0}
        self._ready(procs.settings, key)

    async def _endpoint(self, url: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "INSERT INTO webhook_endpoints (tenant_id, url, event_types, batch_size, secret)"
                " VALUES ($1, $2, $3, $4, $5)", self.tenant_id, url, EVENTS, self.batch_size,
                new_secret())
        finally:
            await conn.close()

    @staticmethod
    def _ready(settings: Settings, key: str, limit_s: float = 120) -> None:
        """One transactional message through to the ledger: its sender is up."""
        with httpx.Client(base_url=settings.api_public_url, headers={"X-API-Key": key}, timeout=30) as api:
            posted = api.post("/v1/messages", headers={"Idempotency-Key": "bench-tx-probe"}, json={
                "messages": [{"to": "+447800999999", "body": "probe"}]}).raise_for_status()
        ref = posted.json()["messages"][0]["message_key"]
        deadline = time.monotonic() + limit_s
        with httpx.Client(base_url=settings.provider_url, timeout=30,
                          headers={"Authorization": f"Bearer {settings.provider_token}"}) as sim:
            while sim.get(f"/v1/messages/by-ref/{ref}").status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("the transactional probe never reached provider-sim")
                time.sleep(0.2)

    def start(self) -> None:
        for load in self.loads.values():
            load.start()

    def posted(self) -> int:
        return sum(len(load.posts) for load in self.loads.values())

    def stop(self) -> None:
        self.result.events_at_end, self.stopped = self.receiver.events, time.monotonic()
        for load in self.loads.values():
            load.stop()

    def finish(self) -> None:
        """The loads' latencies, then wait for the outbox to drain (receipts still arriving)."""
        if self.procs is None:
            raise RuntimeError("setup() first")
        s = self.procs.settings
        reports = {lane: load.report(s.provider_url, s.provider_token) for lane, load in self.loads.items()}
        self.result.transactional, self.result.otp = reports.get("transactional"), reports.get("otp")
        if self.result.dialect == SUBSCRIBED:
            self._drain()
        self.result.outbox_rows = asyncio.run(self._rows())
        self.result.events = self.receiver.events
        self.receiver.shutdown()

    def _drain(self) -> None:
        bar = ui.task(f"{SUBSCRIBED}: outbox → receiver", self.result.recipients * len(EVENTS))
        settled = 0.0
        while time.monotonic() - self.stopped < self.drain_limit_s:
            rows = asyncio.run(self._rows())
            ui.step(bar, self.receiver.events)
            if self.receiver.events >= rows > 0:
                settled = settled or time.monotonic()
                if time.monotonic() - settled > 3.0:  # no receipt left to come
                    self.result.drain_s = settled - self.stopped
                    return
            else:
                settled = 0.0
            time.sleep(0.5)
        self.result.drain_s = time.monotonic() - self.stopped  # not drained: the limit

    async def _rows(self) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM webhook_outbox WHERE tenant_id = $1",
                                           self.tenant_id))
        finally:
            await conn.close()


def latency(reports: list[OtpReport | None]) -> str:
    """Rounds' latencies in one cell: medians of p50 and p99, the worst max, the counts."""
    found = [r for r in reports if r is not None and r.ledgered]
    if not found:
        return "n/a"
    posted, ledgered = sum(r.posted for r in found), sum(r.ledgered for r in found)
    return (f"{statistics.median(r.p50_ms for r in found):,.0f} / "
            f"{statistics.median(r.p99_ms for r in found):,.0f} / {max(r.max_ms for r in found):,.0f}"
            f" ({ledgered:,} of {posted:,})")


def rows(results: Sequence[OutboxResult]) -> list[list[str]]:
    """One row per tenant (medians and ranges over rounds), columns as :data:`HEADER`."""
    of_bare = shares(results, base=BARE)
    everyone = (*CHILDREN, *PROCESSES)
    out = []
    for variant in dict.fromkeys(r.dialect for r in results):
        runs = [r for r in results if r.dialect == variant]
        drained = [f"{r.events:,} in {r.drain_s:.0f} s" for r in runs]
        out.append([
            variant, span([r.rate for r in runs], ",.0f"),
            span(of_bare[variant], ".0%") if of_bare.get(variant) else "n/a",
            span([float(r.outbox_rows) for r in runs], ",.0f"),
            span([float(r.events_at_end) for r in runs], ",.0f") + " · " + "; ".join(drained),
            span([r.cpu_us("sender-bulk-0") for r in runs], ",.0f"),
            span([r.cpu_us("postgres", "postgres-bg") for r in runs], ",.0f"),
            span([r.cpu_us("webhooks") for r in runs], ",.0f"),
            span([r.cpu_us(*everyone) for r in runs], ",.0f")
            + f" · {span([r.busy for r in runs], '.0%')} busy",
            latency([r.transactional for r in runs]), latency([r.otp for r in runs]),
            "yes" if all(r.exactly_once for r in runs) else "NO",
        ])
    return out


def markdown(results: Sequence[OutboxResult]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows(results)])


def _one(broker_url: str, variant: str, round_no: int, args: argparse.Namespace) -> OutboxResult:
    result = OutboxResult(variant, round_no, args.recipients)
    with database() as dsn:
        base = bench_settings(broker_url, dsn, receipts=True)
        settings = dialect_settings(base, "generic", receipts=True).model_copy(
            update={"webhook_allow_private_urls": True})
        beside = Beside(result, dsn, tx_rate=args.tx_rate, otp_rate=args.otp_rate,
                        batch_size=args.batch_size, drain_s=args.drain_s)
        run_holiday_through(settings, dsn, result, alongside=beside)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipients", type=int, default=20_000, help="per run")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of runs, order rotated")
    parser.add_argument("--tx-rate", type=float, default=2.0, help="transactional messages/s")
    parser.add_argument("--otp-rate", type=float, default=1.0, help="OTPs/s (0: none)")
    parser.add_argument("--batch-size", type=int, default=1, help="the endpoint's events a request")
    parser.add_argument("--drain-s", type=float, default=90.0,
                        help="how long to wait for the outbox to drain after the campaign")


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Both tenants in every round on an embedded broker; the results document (also saved)."""
    return side_by_side(args, command, scenario="outbox", variants=[BARE, SUBSCRIBED],
                        one=lambda url, variant, n: _one(url, variant, n, args), markdown=markdown)

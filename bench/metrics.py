"""What Prometheus metrics cost (issue 23): scenario 1 with every process's ``/metrics`` served
and scraped, against the same run without, side by side in one bench run; and what one scrape
of each process costs at the end of the run, with a check that scrapes touch no ``messages``.

``python -m bench metrics --recipients 200000 --rounds 2 --scrape-every 1``: each round runs
both variants on fresh databases, the order rotated a round. *On*: each process serves its
``/metrics`` on its own port and a scraper reads every process every ``--scrape-every`` s
(Prometheus' default is 15 s; 1 s is the harsher case). *Off*: no port, no scrape. The counting
itself (in-memory counters, one ``inc(n)`` per label group of a statement's rows) runs in both:
it is part of the code path, not a switch; its cost is in the sender's CPU per recipient, which
both variants report.

At the end of each *on* run, with the campaign in the ledger and the processes still up:
20 timed scrapes of each process (median ms, bytes, series), and the scans PostgreSQL counted
on ``messages`` (``pg_stat_user_tables``: sequential + index scans) over those scrapes against
an equally long window without scrapes: the scrape path runs no statement on ``messages``, so
the two should match (what background work, a sweep or a poll, does meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from bench.common import Procs, bench_settings, database
from bench.providers import DialectResult, run_holiday_through, shares, side_by_side, span

__all__ = ["OFF", "ON", "MetricsResult", "Scraper", "add_arguments", "markdown", "run"]

OFF, ON = "metrics off", "metrics on"
_FINAL_SCRAPES = 20
_SCANS = ("SELECT COALESCE(sum(seq_scan + COALESCE(idx_scan, 0)), 0) FROM pg_stat_user_tables"
          " WHERE relname = 'messages'")


@dataclass
class MetricsResult(DialectResult):
    """One run (``dialect`` is :data:`OFF` or :data:`ON`)."""

    scrape_every_s: float = 0.0
    scrapes: int = 0  # scrapes of one process during the run, all processes together
    scrape_errors: int = 0
    scrape_ms: dict[str, float] = field(default_factory=dict)  # per process, median, at the end
    scrape_bytes: dict[str, int] = field(default_factory=dict)
    series: dict[str, int] = field(default_factory=dict)
    scans_scraping: int = -1  # scans of `messages` while every process was scraped 20 times
    scans_quiet: int = -1  # the same over an equally long window without scrapes


class Scraper:
    """Beside the campaign (``bench.alongside.Alongside``): scrape every process every
    ``every_s`` during the run; at the end, the cost of one scrape per process."""

    def __init__(self, result: MetricsResult, dsn: str, every_s: float) -> None:
        self.result, self.dsn, self.every_s = result, dsn, every_s
        self.urls: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def setup(self, procs: Procs, tenant_id: int, key: str) -> None:
        self.urls = dict(procs.metrics_urls)
        self.result.scrape_every_s = self.every_s if self.urls else 0.0

    def start(self) -> None:
        if self.urls:
            self._thread = threading.Thread(target=self._loop, name="scraper", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.wait(self.every_s):
                for url in self.urls.values():
                    try:
                        client.get(url).raise_for_status()
                        self.result.scrapes += 1
                    except httpx.HTTPError:
                        self.result.scrape_errors += 1

    def posted(self) -> int:
        return 0

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def finish(self) -> None:
        if not self.urls:
            return
        window = self._final_cost()
        self.result.scans_quiet = asyncio.run(self._scans_over(window, scrape=False))
        self.result.scans_scraping = asyncio.run(self._scans_over(window, scrape=True))

    def _final_cost(self) -> float:
        """Median time, size and series of ``_FINAL_SCRAPES`` scrapes of each process; returns
        how long one round of scrapes of every process took."""
        started = time.perf_counter()
        with httpx.Client(timeout=10) as client:
            for name, url in self.urls.items():
                times, body = [], ""
                for _ in range(_FINAL_SCRAPES):
                    t0 = time.perf_counter()
                    body = client.get(url).raise_for_status().text
                    times.append((time.perf_counter() - t0) * 1000)
                self.result.scrape_ms[name] = round(statistics.median(times), 2)
                self.result.scrape_bytes[name] = len(body.encode())
                self.result.series[name] = sum(
                    1 for line in body.splitlines() if line and not line.startswith("#"))
        return time.perf_counter() - started

    async def _scans_over(self, seconds: float, *, scrape: bool) -> int:
        """Scans of ``messages`` over ``seconds`` (at least 2), scraping every process the
        whole time or not at all (statistics reach the view within a second: waited for)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await asyncio.sleep(1.5)
            before = int(await conn.fetchval(_SCANS))
            until = time.monotonic() + max(seconds, 2.0)
            async with httpx.AsyncClient(timeout=10) as client:
                while time.monotonic() < until:
                    if scrape:
                        for url in self.urls.values():
                            (await client.get(url)).raise_for_status()
                    else:
                        await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)
            return int(await conn.fetchval(_SCANS)) - before
        finally:
            await conn.close()


HEADER = ["variant", "round", "recipients/s", "of off", "sender CPU µs/recipient",
          "api CPU µs/recipient", "hexcast CPU µs/recipient", "all CPU µs/recipient",
          "scrapes (errors)", "exactly once"]
_NOT_HEXCAST = ("postgres", "postgres-bg", "redis", "broker", "unattributed")
"""CPU groups of a result that are not a hexcast process (each of the others serves /metrics)."""


def rows(results: Sequence[MetricsResult]) -> list[list[str]]:
    of_off = shares(results, base=OFF)
    out = []
    for r in sorted(results, key=lambda r: (r.round, r.dialect)):
        share = {n: v for n, v in zip(sorted({x.round for x in results}), of_off.get(r.dialect, []),
                                      strict=False)}.get(r.round)
        out.append([r.dialect, str(r.round), f"{r.rate:,.0f}",
                    f"{share:.3f}" if share is not None else "",
                    f"{r.cpu_us('sender-bulk-0'):.0f}", f"{r.cpu_us('api'):.0f}",
                    f"{r.cpu_us(*(g for g in r.cpu_s if g not in _NOT_HEXCAST)):.0f}",
                    f"{r.cpu_us(*r.cpu_s):.0f}",
                    f"{r.scrapes:,} ({r.scrape_errors})" if r.dialect == ON else "",
                    "yes" if r.exactly_once else "NO"])
    return out


def cost_rows(results: Sequence[MetricsResult]) -> list[list[str]]:
    out = []
    for r in results:
        for name in sorted(r.scrape_ms):
            out.append([str(r.round), name, f"{r.scrape_ms[name]:.2f}",
                        f"{r.scrape_bytes[name]:,}", f"{r.series[name]:,}"])
    return out


def markdown(results: Sequence[MetricsResult]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    on = [r.rate / o.rate for o in results if o.dialect == OFF
          for r in results if r.dialect == ON and r.round == o.round and o.rate > 0]
    if on:
        lines.append(f"\non / off: {span(on, '.3f')}")
    lines += ["", "| round | process | scrape ms (median of 20) | bytes | series |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in cost_rows(results)]
    scans = [(r.scans_scraping, r.scans_quiet) for r in results if r.dialect == ON]
    lines += [f"\nscans of `messages` while scraping / over as long without: {a} / {b}"
              for a, b in scans]
    return "\n".join(lines)


def _one(broker_url: str, variant: str, round_no: int, args: argparse.Namespace) -> MetricsResult:
    result = MetricsResult(variant, round_no, args.recipients)
    with database() as dsn:
        settings = bench_settings(broker_url, dsn, receipts=True)
        scraper = Scraper(result, dsn, args.scrape_every)
        run_holiday_through(settings, dsn, result, alongside=scraper, metrics=variant == ON)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipients", type=int, default=100_000, help="per run")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs, order rotated")
    parser.add_argument("--scrape-every", type=float, default=1.0, help="seconds between scrapes")
    parser.add_argument("--first-round", type=int, default=0,
                        help="the first round's number (1: *on* runs first)")


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Both variants in every round on one embedded broker; the results document (also saved)."""
    return side_by_side(args, command, scenario="metrics", variants=[OFF, ON],
                        one=lambda url, variant, n: _one(url, variant, n, args), markdown=markdown)

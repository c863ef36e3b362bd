"""Issue 22's benchmark: ``python -m bench forecast`` (not part of ``all``).

How right is the live projected finish? Scenario 1 (``bench.providers.run_holiday_through``,
generic route, receipts held) with the holiday campaign capped by ``max_rate``, so the run
lasts minutes and its zones (``bench.holiday.ZONES``, all fired at once by run-now) finish at
different times. When the provider ledger holds 10 %, 50 % and 90 % of the audience, the bench
reads ``GET /v1/campaigns/{id}/runs`` and keeps each zone's ``projected_finish_at``. After
the run, a zone's actual finish is the last ledger ``accepted_at`` of its recipients (the
ledger copied into a temporary table and joined on phone with the audience loaded). Reported
per zone and sample: projected − actual, in seconds and in % of the run's duration (the run's
``created_at`` → its last ledger entry). The "whole run" row compares the latest projected
zone finish with the last acceptance.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from bench import ui
from bench.common import Procs, bench_settings, clear_redis, database, loadavg, machine
from bench.providers import DialectResult, dialect_settings, run_holiday_through, save
from hexcast.core.settings import Settings
from hexcast.devstack.broker import EmbeddedBroker

__all__ = ["FRACTIONS", "RUN", "ForecastResult", "Sampler", "add_arguments", "errors", "markdown",
           "measure", "run", "zone_finishes"]

FRACTIONS = (0.10, 0.50, 0.90)
"""The shares of the audience in the ledger at which the projection is read."""
RUN = "whole run"
_LEDGER_PAGE = 10_000


@dataclass
class ForecastResult(DialectResult):
    """One capped holiday run, its samples of the projection and each zone's actual finish."""

    max_rate: float = 0.0
    run_id: int = 0
    run_created_at: str = ""  # the run's created_at (run-now), from the api
    samples: list[dict[str, Any]] = field(default_factory=list)  # one per reached fraction
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)  # zone → audience, ledgered, last
    sampler_error: str = ""

    @property
    def ended_at(self) -> datetime | None:
        """The last acceptance of the campaign in the ledger."""
        lasts = [datetime.fromisoformat(z["last"]) for z in self.zones.values() if z.get("last")]
        return max(lasts) if lasts else None

    @property
    def duration_s(self) -> float:
        end = self.ended_at
        if end is None or not self.run_created_at:
            return 0.0
        return (end - datetime.fromisoformat(self.run_created_at)).total_seconds()


class Sampler:
    """Beside the campaign (a :class:`bench.alongside.Alongside`): a thread polls the ledger
    and reads the run's projection as each of :data:`FRACTIONS` is reached; at the end, each
    zone's actual finish from the ledger."""

    def __init__(self, result: ForecastResult, dsn: str) -> None:
        self.result, self.dsn = result, dsn
        self.procs: Procs | None = None
        self.tenant_id, self.key, self.base = 0, "", 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def setup(self, procs: Procs, tenant_id: int, key: str) -> None:
        self.procs, self.tenant_id, self.key = procs, tenant_id, key

    def _settings(self) -> Settings:
        if self.procs is None:
            raise RuntimeError("setup() first")
        return self.procs.settings

    def start(self) -> None:
        s = self._settings()
        self.base = int(httpx.get(f"{s.provider_url}/ledger/stats", timeout=30).json()["total"])
        self._thread = threading.Thread(target=self._watch, name="forecast-sampler", daemon=True)
        self._thread.start()

    def posted(self) -> int:
        return 0

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _watch(self) -> None:
        s = self._settings()
        try:
            with httpx.Client(base_url=s.api_public_url, headers={"X-API-Key": self.key},
                              timeout=60) as api, httpx.Client(base_url=s.provider_url, timeout=30) as sim:
                campaign_id = api.get("/v1/campaigns").raise_for_status().json()[0]["id"]
                pending = list(FRACTIONS)
                while pending and not self._stop.is_set():
                    count = int(sim.get("/ledger/stats").json()["total"]) - self.base
                    while pending and count >= pending[0] * self.result.recipients:
                        self.result.samples.append(_sample(api, campaign_id, pending.pop(0), count))
                    self._stop.wait(0.2)
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            self.result.sampler_error = f"{type(exc).__name__}: {exc}"[:500]

    def finish(self) -> None:
        """The run's id and start, and each zone's audience, ledgered count and last acceptance."""
        s = self._settings()
        with httpx.Client(base_url=s.api_public_url, headers={"X-API-Key": self.key}, timeout=60) as api:
            campaign_id = api.get("/v1/campaigns").raise_for_status().json()[0]["id"]
            found = api.get(f"/v1/campaigns/{campaign_id}/runs").raise_for_status().json()[0]
        self.result.run_id, self.result.run_created_at = found["id"], found["created_at"]
        bar = ui.task("forecast: ledger → actual finish per zone", 1)
        self.result.zones = asyncio.run(zone_finishes(self.dsn, self.tenant_id, s.provider_url))
        ui.step(bar, 1)


def _sample(api: httpx.Client, campaign_id: int, fraction: float, ledgered: int) -> dict[str, Any]:
    """The run's projection now: its measured rate and, per zone (in projection order: fire
    time, then wave), what remains and when it is projected to finish."""
    taken_at = datetime.now(UTC)
    found = api.get(f"/v1/campaigns/{campaign_id}/runs").raise_for_status().json()[0]
    return {
        "fraction": fraction, "ledgered": ledgered, "taken_at": taken_at.isoformat(),
        "state": found["state"], "rate_per_s": found.get("rate_per_s"),
        "measured_rate_per_s": found.get("measured_rate_per_s"),
        "zones": [{k: w.get(k) for k in ("time_zone", "fire_at", "state", "released", "remaining",
                                         "measured_rate_per_s", "projected_finish_at",
                                         "deadline_at", "at_risk")} for w in found["waves"]],
    }


async def zone_finishes(dsn: str, tenant_id: int, sim_url: str) -> dict[str, dict[str, Any]]:
    """Per zone of the tenant's audience: recipients, how many of them the ledger holds, and
    its first and last ``accepted_at`` (the ledger copied into a temporary table, joined on
    phone; entries that are no recipient's, such as the probe OTP, drop out)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TEMP TABLE bench_ledger (phone text, accepted_at timestamptz)")
        async with httpx.AsyncClient(base_url=sim_url, timeout=120) as sim:
            after = 0
            while True:
                page = (await sim.get("/ledger", params={"after": after, "limit": _LEDGER_PAGE})
                        ).raise_for_status().json()["items"]
                if not page:
                    break
                await conn.copy_records_to_table("bench_ledger", records=[
                    (i["to"], datetime.fromisoformat(i["accepted_at"])) for i in page])
                after += len(page)
        rows = await conn.fetch(
            "SELECT r.time_zone, count(DISTINCT r.id) AS audience, count(l.phone) AS ledgered,"
            " min(l.accepted_at) AS first, max(l.accepted_at) AS last"
            " FROM recipients r LEFT JOIN bench_ledger l ON l.phone = r.phone"
            " WHERE r.tenant_id = $1 GROUP BY 1 ORDER BY 1", tenant_id)
    finally:
        await conn.close()
    return {r["time_zone"]: {"audience": r["audience"], "ledgered": r["ledgered"],
                             "first": _iso(r["first"]), "last": _iso(r["last"])} for r in rows}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _error(projected: str | None, actual: str | None, taken_at: str, duration_s: float
           ) -> dict[str, float] | None:
    """projected − actual (``s``, and ``pct`` of the run); without a projection (nothing left
    to the zone by the projection's count), how long after the sample it really ended."""
    if actual is None:
        return None
    if projected is None:
        return {"ends_in_s": round(_seconds(taken_at, actual), 1)}
    s = _seconds(actual, projected)
    return {"s": round(s, 1), "pct": round(100 * s / duration_s, 1) if duration_s > 0 else 0.0}


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def errors(result: ForecastResult) -> list[dict[str, Any]]:
    """Per zone (projection order) and the whole run: recipients, actual finish (s after
    run-now), and per sample the projected finish − the actual one (see :func:`_error`)."""
    if not result.samples or not result.run_created_at:
        return []
    start = datetime.fromisoformat(result.run_created_at)
    order = [z["time_zone"] for z in result.samples[0]["zones"]]
    out = []
    for zone in order:
        actual = result.zones.get(zone, {}).get("last")
        per: list[dict[str, Any]] = [next((z for z in s["zones"] if z["time_zone"] == zone), {})
                                     for s in result.samples]
        out.append({"zone": zone, "recipients": result.zones.get(zone, {}).get("audience", 0),
                    "actual_s": _since(start, actual),
                    "errors": [_error(z.get("projected_finish_at"), actual, s["taken_at"],
                                      result.duration_s) for z, s in zip(per, result.samples,
                                                                         strict=True)]})
    ended = _iso(result.ended_at)
    latest = [max((z["projected_finish_at"] for z in s["zones"] if z.get("projected_finish_at")),
                  key=datetime.fromisoformat, default=None) for s in result.samples]
    out.append({"zone": RUN, "recipients": sum(z.get("audience", 0) for z in result.zones.values()),
                "actual_s": _since(start, ended),
                "errors": [_error(p, ended, s["taken_at"], result.duration_s)
                           for p, s in zip(latest, result.samples, strict=True)]})
    return out


def _since(start: datetime, at: str | None) -> float | None:
    return None if at is None else round((datetime.fromisoformat(at) - start).total_seconds(), 1)


def _cell(error: dict[str, float] | None) -> str:
    if error is None:
        return "n/a"
    if "s" in error:
        return f"{error['s']:+,.0f} s ({error['pct']:+.1f} %)"
    left = error["ends_in_s"]
    return "finished" if left <= 0 else f"none: 0 left, ended {left:,.0f} s later"


def markdown(result: ForecastResult) -> str:
    """The samples (when, measured rate) and the error table, for BENCHMARKS.md."""
    if not result.samples or not result.run_created_at:
        return "no samples"
    start = datetime.fromisoformat(result.run_created_at)
    head = [f"at {s['fraction']:.0%}: {_since(start, s['taken_at']):.0f} s, "
            f"{(s['measured_rate_per_s'] or 0):,.0f}/s" for s in result.samples]
    lines = ["| zone | recipients | actual finish | " + " | ".join(head) + " |",
             "|" + "---|" * (3 + len(head))]
    for row in errors(result):
        actual = "n/a" if row["actual_s"] is None else (
            f"{row['actual_s']:,.0f} s ({100 * row['actual_s'] / max(result.duration_s, 1e-9):.0f} %)")
        lines.append(f"| {row['zone']} | {row['recipients']:,} | {actual} | "
                     + " | ".join(_cell(e) for e in row["errors"]) + " |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipients", type=int, default=100_000, help="the holiday audience")
    parser.add_argument("--max-rate", type=float, default=1500.0,
                        help="the campaign's max_rate, messages/s (1M at 1,500/s: ~11 min)")


def measure(recipients: int, max_rate: float) -> ForecastResult:
    """One capped holiday run on an embedded broker and a throwaway database."""
    result = ForecastResult("generic", 0, recipients, max_rate=max_rate)
    try:
        with EmbeddedBroker() as broker, ui.live(), database() as dsn:
            settings = dialect_settings(bench_settings(broker.url, dsn, receipts=True), "generic",
                                        receipts=False)
            run_holiday_through(settings, dsn, result, alongside=Sampler(result, dsn),
                                campaign={"name": "Black Friday, capped", "max_rate": max_rate})
    finally:
        clear_redis()
    return result


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """:func:`measure`, then the results document (saved) and its table."""
    date, where, started = datetime.now(UTC).isoformat(timespec="seconds"), machine(), time.perf_counter()
    result = measure(args.recipients, args.max_rate)
    doc = {"date": date, "machine": where, "command": command,
           "args": vars(args) | {"scenario": "forecast"}, "wall_s": time.perf_counter() - started,
           "loadavg_end": loadavg(), "duration_s": result.duration_s, "result": asdict(result),
           "errors": errors(result), "markdown": markdown(result)}
    ui.console.print(f"results: {save(doc, 'forecast')}")
    ui.console.print(doc["markdown"])
    return doc

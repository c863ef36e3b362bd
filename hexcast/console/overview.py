"""What the overview shows, gathered for one principal: lanes, routes, running campaigns,
dead letters, deferrals, opt-outs and firing alerts.

PostgreSQL and Redis give what they hold cheaply (waiting messages by the lanes' index, run
tallies, the routes' live states); rates, latency percentiles, error codes, breakers and the
dead-letter depth come from Prometheus (None: not connected). A tenant sees its own campaigns,
its own counts, and the routes that serve it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from hexcast.console import queries
from hexcast.console.prometheus import Prometheus, Sample, by_label, selector
from hexcast.core.alerts import Alert, firing_alerts
from hexcast.core.cache import Keys
from hexcast.core.db import Conn
from hexcast.core.settings import Settings
from scheduler import RunSnapshot, snapshots
from sender import Lane, RouteControl, RouteState, provider_specs

__all__ = ["CampaignRow", "LaneRow", "Overview", "RouteRow", "overview"]

_FINAL = "delivered|failed|undeliverable|expired"


@dataclass(frozen=True, slots=True)
class LaneRow:
    lane: str
    waiting: int
    more: bool
    oldest: datetime | None
    rate: float | None  # accepted/s over the last minute (Prometheus)
    lag: float | None  # consumer lag of its topic (Prometheus, operators)


@dataclass(slots=True)
class RouteRow:
    name: str
    kind: str
    lanes: list[str]
    state: str
    mps_allowed: float
    mps_used: float | None = None
    accepted: float | None = None
    delivery_rate: float | None = None
    p95_s: float | None = None
    errors: list[tuple[str, float]] | None = None
    breaker: str | None = None


@dataclass(frozen=True, slots=True)
class CampaignRow:
    run: Any  # a row of queries.unfinished_runs
    snapshot: RunSnapshot | None  # None: paused (nothing moves)

    @property
    def total(self) -> int:
        live = self.settled + sum(z.remaining for z in self.snapshot.zones) if self.snapshot else 0
        return max(int(self.run["planned"]), int(self.run["released"]), self.settled, live, 1)

    @property
    def settled(self) -> int:
        return int(self.run["settled"])


@dataclass(slots=True)
class Overview:
    connected: bool
    lanes: list[LaneRow]
    routes: list[RouteRow]
    campaigns: list[CampaignRow]
    recent: list[Any]
    dlq_depth: float | None = None
    dlq_letters: dict[str, float] | None = None
    deferred: dict[str, float] | None = None
    optouts: float | None = None
    delivered: float | None = None
    alerts: list[Alert] = field(default_factory=list)


def _queries(t: str | None) -> dict[str, str]:
    """PromQL of every Prometheus cell, limited to tenant ``t`` where the metric has one."""
    own = selector(tenant=t)[1:-1]
    acc = selector(state="accepted", tenant=t)
    return {
        "lane_rate": f"sum by (lane) (rate(hexcast_messages_total{acc}[1m]))",
        "lag": "sum by (topic) (hexcast_kafka_consumer_lag)",
        "mps": f"sum by (provider) (rate(hexcast_segments_total{{{own}}}[1m]))",
        "accepted": f"sum by (provider) (increase(hexcast_messages_total{acc}[1h]))",
        "delivered": "sum by (provider) (increase(hexcast_messages_total"
                     f"{selector(state='delivered', tenant=t)}[1h]))",
        "final": "sum by (provider) (increase(hexcast_messages_total{state=~"
                 f'"{_FINAL}"{"," + own if own else ""}}}[1h]))',
        "p95": "histogram_quantile(0.95, sum by (provider, le)"
               " (rate(hexcast_receipt_latency_seconds_bucket[5m])))",
        "errors": f"sum by (provider, code) (increase(hexcast_provider_errors_total{{{own}}}[1h])) > 0",
        "breaker": "max by (provider, state) (hexcast_breaker_state)",
        "dlq": "max(hexcast_dlq_depth)",
        "dlq_letters": "sum by (reason) (increase(hexcast_dlq_letters_total[1h])) > 0",
        "deferred": f"sum by (reason) (increase(hexcast_deferred_total{{{own}}}[1h])) > 0",
        "optouts": f"sum(increase(hexcast_optouts_total{{{own}}}[1h]))",
        "delivered_all": f"sum(increase(hexcast_messages_total{selector(state='delivered', tenant=t)}[1h]))",
    }


def _one(samples: list[Sample] | None) -> float | None:
    if samples is None:
        return None
    return samples[0].value if samples else 0.0


async def overview(conn: Conn, redis: aioredis.Redis, settings: Settings, *, tenant_id: int | None,
                   operator: bool) -> Overview:
    """The overview of ``tenant_id`` (None: every tenant); ``operator`` adds what only
    operators see (consumer lag, dead letters)."""
    async with Prometheus(settings.prometheus_url) as prom:
        found = await prom.vectors(_queries(None if tenant_id is None else str(tenant_id)))
    runs = await queries.unfinished_runs(conn, tenant_id=tenant_id)
    live = {s.run["id"]: s for s in await snapshots(
        conn, quiet_hours_on=settings.sender_quiet_hours,
        run_ids=[r["id"] for r in runs if r["state"] != "paused"])}
    view = Overview(
        connected=prom.connected, lanes=await _lanes(conn, found, tenant_id, operator),
        routes=await _routes(redis, settings, found, tenant_id),
        campaigns=[CampaignRow(r, live.get(r["id"])) for r in runs],
        recent=await queries.recent_campaigns(conn, tenant_id=tenant_id),
        deferred=by_label(found["deferred"], "reason"), optouts=_one(found["optouts"]),
        delivered=_one(found["delivered_all"]), alerts=await firing(conn, tenant_id=tenant_id))
    if operator:
        view.dlq_depth = _one(found["dlq"])
        view.dlq_letters = by_label(found["dlq_letters"], "reason")
    return view


async def _lanes(conn: Conn, found: dict[str, list[Sample] | None], tenant_id: int | None,
                 operator: bool) -> list[LaneRow]:
    rates = by_label(found["lane_rate"], "lane")
    lags = by_label(found["lag"], "topic") if operator else None
    rows = await queries.lane_backlogs(conn, lanes=[lane.value for lane in Lane], tenant_id=tenant_id)
    out = []
    for r in rows:
        lag = None if lags is None else sum(v for topic, v in lags.items()
                                            if topic.endswith(f"send.{r['lane']}"))
        out.append(LaneRow(r["lane"], min(r["n"], queries.BACKLOG_CAP), r["more"], r["oldest"],
                           None if rates is None else rates.get(r["lane"], 0.0), lag))
    return out


async def _routes(redis: aioredis.Redis, settings: Settings, found: dict[str, list[Sample] | None],
                  tenant_id: int | None) -> list[RouteRow]:
    states = await RouteControl(redis, Keys(settings.redis_prefix)).states()
    rows = []
    for spec in provider_specs(settings):
        if tenant_id is not None and spec.tenants is not None and tenant_id not in spec.tenants:
            continue
        rows.append(RouteRow(spec.name, spec.kind, [lane.value for lane in spec.lanes],
                             states.get(spec.name, RouteState.ENABLED).value,
                             spec.rate_per_s or settings.provider_rate_per_s))
    if found["mps"] is not None:
        _fill_route_metrics(rows, found)
    return rows


def _by_route(samples: list[Sample] | None) -> dict[str, float]:
    return by_label(samples, "provider") or {}


def _fill_route_metrics(rows: list[RouteRow], found: dict[str, list[Sample] | None]) -> None:
    mps, accepted = _by_route(found["mps"]), _by_route(found["accepted"])
    delivered, final, p95 = _by_route(found["delivered"]), _by_route(found["final"]), _by_route(found["p95"])
    for row in rows:
        row.mps_used, row.accepted = mps.get(row.name, 0.0), accepted.get(row.name, 0.0)
        done = final.get(row.name, 0.0)
        row.delivery_rate = delivered.get(row.name, 0.0) / done if done else None
        row.p95_s = p95.get(row.name)
        row.errors = sorted(((s.labels.get("code", ""), s.value) for s in found["errors"] or ()
                             if s.labels.get("provider") == row.name), key=lambda e: -e[1])[:3]
        on = {s.labels.get("state") for s in found["breaker"] or ()
              if s.labels.get("provider") == row.name and s.value >= 1}
        row.breaker = next((b for b in ("open", "half_open", "closed") if b in on), None)


async def firing(conn: Conn, *, tenant_id: int | None) -> list[Alert]:
    """Alerts firing now (Alertmanager's receiver keeps them), the tenant's only."""
    return await firing_alerts(conn, tenant_id=tenant_id, limit=20)

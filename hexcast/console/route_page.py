"""A provider route as the console shows it to operators: its live state, error codes over
time, breaker history and latency histograms (Prometheus, when connected), the operators'
actions on it (PostgreSQL), and drain / enable through the sender's own route control."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from markupsafe import Markup

from hexcast.console import charts
from hexcast.console.prometheus import Prometheus, Sample, Series, selector
from hexcast.core.cache import Keys
from hexcast.core.db import Conn
from hexcast.core.errors import NotFound
from hexcast.core.settings import Settings
from sender import RouteAction, RouteControl, RouteState, act_on_route, provider_specs, route_history

__all__ = ["ROUTE_ACTIONS", "RouteView", "act", "known", "route_view"]

ROUTE_ACTIONS = ("drain", "enable")
_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class RouteView:
    spec: Any  # sender ProviderSpec
    state: str
    in_flight: int
    mps_allowed: float
    history: list[tuple[str, str, str, str]]  # (action, actor, reason, ISO time), newest first
    connected: bool
    errors: Markup | None
    breaker: Markup | None
    request_latency: Markup | None
    receipt_latency: Markup | None


def known(settings: Settings, name: str) -> bool:
    """Whether a route called ``name`` is configured."""
    return any(s.name == name for s in provider_specs(settings))


def _spec(settings: Settings, name: str) -> Any:
    spec = next((s for s in provider_specs(settings) if s.name == name), None)
    if spec is None:
        raise NotFound(f"no provider route {name!r}")
    return spec


async def route_view(conn: Conn, redis: aioredis.Redis, settings: Settings, *, name: str) -> RouteView:
    """The route called ``name`` (NotFound if none is configured)."""
    spec = _spec(settings, name)
    control = RouteControl(redis, Keys(settings.redis_prefix))
    on = selector(provider=name)
    end = time.time()
    async with Prometheus(settings.prometheus_url) as prom:
        errors, breaker, request, receipt = await asyncio.gather(
            prom.matrix(f"sum by (code) (increase(hexcast_provider_errors_total{on}[5m]))",
                        seconds=_HOUR, step_s=60, end=end),
            prom.matrix(f"max by (state) (hexcast_breaker_state{on})", seconds=_HOUR, step_s=30,
                        end=end),
            prom.vector(f"sum by (le) (increase(hexcast_provider_request_seconds_bucket{on}[1h]))"),
            prom.vector(f"sum by (le) (increase(hexcast_receipt_latency_seconds_bucket{on}[1h]))"))
    return RouteView(
        spec, (await control.states()).get(name, RouteState.ENABLED).value,
        await control.in_flight(name), spec.rate_per_s or settings.provider_rate_per_s,
        await route_history(conn, route=name, limit=20), prom.connected,
        None if errors is None else charts.lines(
            [charts.Line(s.labels.get("code") or "?", s.points) for s in errors], unit=""),
        None if breaker is None else charts.strip(_stretches(breaker)),
        None if request is None else charts.histogram(_buckets(request)),
        None if receipt is None else charts.histogram(_buckets(receipt)))


def _stretches(series: list[Series]) -> list[tuple[float, float, str]]:
    """The breaker's state at each step (the one-hot gauge's series at 1), merged into runs."""
    at: dict[float, str] = {}
    for s in series:
        for t, v in s.points:
            if v >= 1 and (s.labels.get("state") == "open" or at.get(t) in (None, "closed")):
                at[t] = s.labels.get("state", "?")
    out: list[tuple[float, float, str]] = []
    for t in sorted(at):
        if out and out[-1][2] == at[t]:
            out[-1] = (out[-1][0], t, at[t])
        else:
            if out:  # a state lasts until the next one starts
                out[-1] = (out[-1][0], t, out[-1][2])
            out.append((t, t, at[t]))
    return out


def _le(sample: Sample) -> float:
    try:
        return float(sample.labels.get("le", "+Inf"))
    except ValueError:
        return math.inf


def _seconds(le: float) -> str:
    if math.isinf(le):
        return "more"
    return f"≤{le:g}s" if le < 60 else f"≤{le / 60:g}m" if le < 3600 else f"≤{le / 3600:g}h"


def _buckets(samples: list[Sample]) -> list[tuple[str, float]]:
    """Per bucket of a cumulative histogram, the observations in it (``≤0.5s``), up to the
    bucket after the last one with any."""
    out, below = [], 0.0
    for s in sorted(samples, key=_le):
        out.append((_seconds(_le(s)), max(s.value - below, 0.0)))
        below = max(below, s.value)
    last = max((i for i, (_, n) in enumerate(out) if n > 0), default=len(out) - 1)
    return out[:last + 2]


async def act(conn: Conn, redis: aioredis.Redis, settings: Settings, *, name: str,
              action: RouteAction, actor: str, reason: str) -> None:
    """Drain or enable the route as ``hexcast providers`` and the operator API do (audited)."""
    _spec(settings, name)
    await act_on_route(RouteControl(redis, Keys(settings.redis_prefix)), conn, route=name,
                       action=action, actor=actor, reason=reason)

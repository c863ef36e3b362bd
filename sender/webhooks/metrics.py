"""The webhooks worker's Prometheus metrics, kept in process: attempts and deliveries given up,
counted as the worker records them (``sender.webhooks.delivery``), and two gauges it refreshes
every :data:`REFRESH_S` from the small tables (pending deliveries per tenant, endpoints failing;
``sender.webhooks.queue.backlog`` and ``failing_endpoints``). A scrape reads these objects only.

Labels: ``tenant`` the tenant id, ``endpoint`` the endpoint id, ``outcome`` of an attempt (one
request): ok, gone (410), throttled (429/503), rejected (another status) or unreachable (no
answer: refused, timed out, an unsafe address).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge

from hexcast.core.metrics import RefreshedGauge

__all__ = ["ATTEMPTS", "BACKLOG", "ENDPOINT_FAILING", "FAILURES", "REFRESH_S", "attempt_outcome",
           "count_attempt", "show_backlog", "show_failing"]

REFRESH_S = 5.0

BACKLOG = Gauge("hexcast_webhook_backlog", "Pending webhook deliveries (not parked)", ["tenant"])
ATTEMPTS = Counter("hexcast_webhook_attempts", "Requests to tenants' endpoints, by outcome",
                   ["tenant", "endpoint", "outcome"])
FAILURES = Counter("hexcast_webhook_failures", "Deliveries given up (the retry schedule spent)",
                   ["tenant", "endpoint"])
ENDPOINT_FAILING = Gauge("hexcast_webhook_endpoint_failing",
                         "1 while an enabled endpoint's failure clock runs", ["tenant", "endpoint"])
_BACKLOG, _FAILING = RefreshedGauge(BACKLOG), RefreshedGauge(ENDPOINT_FAILING)


def attempt_outcome(status: int | None) -> str:
    if status is None:
        return "unreachable"
    if 200 <= status < 300:
        return "ok"
    if status == 410:
        return "gone"
    if status in (429, 503):
        return "throttled"
    return "rejected"


def count_attempt(tenant: int, endpoint: int, status: int | None, given_up: int = 0) -> None:
    """One request's outcome, and the deliveries it carried that are given up for good."""
    labels = {"tenant": str(tenant), "endpoint": str(endpoint)}
    ATTEMPTS.labels(outcome=attempt_outcome(status), **labels).inc()
    if given_up:
        FAILURES.labels(**labels).inc(given_up)


def show_backlog(pending: Mapping[int, int]) -> None:
    """Pending deliveries per tenant with an endpoint (0 when none is pending)."""
    _BACKLOG.replace({(str(t),): float(n) for t, n in pending.items()})


def show_failing(endpoints: Mapping[tuple[int, int], bool]) -> None:
    """(tenant, endpoint) → failing, for every endpoint (a deleted one's series goes)."""
    _FAILING.replace({(str(t), str(e)): float(f) for (t, e), f in endpoints.items()})

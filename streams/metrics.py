"""Prometheus metrics of the visit path: the api's ingestion, the matcher and the archiver.

Counted in the process doing the work (each serves its own ``/metrics``, see
:mod:`hexcast.core.metrics`). The matcher's hot path adds up counts per tenant in a plain
``Counter`` and :class:`MatcherMetrics` moves them to the Prometheus counters about once a
second, a handful of ``inc(n)`` calls instead of several per visit. Suppression reasons: see
``streams.matcher`` (accuracy, no_geofence, no_promotion, outside_hours, no_interest,
not_triggered, duplicate, no_profile, no_consent) and ``streams.gate`` (cooldown, cap, budget,
max_per_visit).
"""

from __future__ import annotations

import time
from collections import Counter as Counts

from prometheus_client import Counter

__all__ = [
    "ARCHIVER_DEAD_LETTERS",
    "ARCHIVER_VISITS",
    "MATCHER_TOTALS",
    "SUPPRESSED",
    "VISITS_ACCEPTED",
    "VISITS_REJECTED",
    "MatcherMetrics",
]

MATCHER_TOTALS = {
    "visits": Counter("hexcast_matcher_visits", "Visit events the matcher read", ["tenant"]),
    "matched": Counter("hexcast_matcher_matched",
                       "Sends the matcher let through its gate (cooldown, caps, budget)",
                       ["tenant"]),
    "triggered": Counter("hexcast_matcher_triggered",
                         "Promotions a visit triggered, before the gate", ["tenant"]),
    "budget_released": Counter("hexcast_matcher_budget_released",
                               "Promotion budget slots given back by geo messages that never"
                               " reached the handset", ["tenant"]),
}
"""Count name in the matcher's per-tenant counts → its counter; any other name is a reason."""
SUPPRESSED = Counter("hexcast_matcher_suppressed",
                     "Visit events or triggered sends the matcher suppressed, by reason",
                     ["tenant", "reason"])

VISITS_ACCEPTED = Counter("hexcast_visits_accepted", "Visit events the api accepted (published)",
                          ["tenant"])
VISITS_REJECTED = Counter("hexcast_visits_rejected", "Visit events the api refused, by reason"
                          " (malformed_json, invalid, unavailable)", ["reason"])

ARCHIVER_VISITS = Counter("hexcast_archiver_visits", "Visit events the archiver stored")
ARCHIVER_DEAD_LETTERS = Counter("hexcast_archiver_dead_letters",
                                "Visit records the archiver dead-lettered, by reason"
                                " (bad_record, not_stored)", ["reason"])


class MatcherMetrics:
    """One matcher process's per-tenant counts, moved to the Prometheus counters by
    :meth:`flush` (the agents flush when :meth:`due`, and on a 1 s timer). Every total of a
    tenant the process has seen has a series, 0 until it counts."""

    def __init__(self, *, every_s: float = 1.0) -> None:
        self._every = every_s
        self._pending: dict[int, Counts[str]] = {}
        self._last = time.monotonic()

    def add(self, tenant_id: int, counts: Counts[str]) -> None:
        self._pending.setdefault(tenant_id, Counts()).update(counts)

    def due(self) -> bool:
        return bool(self._pending) and time.monotonic() - self._last >= self._every

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        self._last = time.monotonic()
        for tenant_id, counts in pending.items():
            tenant = str(tenant_id)
            for name, total in MATCHER_TOTALS.items():  # every total of a tenant seen, 0 or not
                total.labels(tenant).inc(max(counts.pop(name, 0), 0))
            for reason, n in counts.items():
                if n > 0:
                    SUPPRESSED.labels(tenant, reason).inc(n)

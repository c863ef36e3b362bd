"""provider-sim's Prometheus metrics: the send requests it answered and the faults it injected.

``hexcast_sim_requests_total{dialect,outcome}``: each send request (an HTTP batch or message,
or an SMPP submit_sm: dialect ``smpp``) by what the simulator made of it: ``ok`` (let through to
the ledger), ``throttled`` (its rate limit: 429, ``ESME_RTHROTTLED``) or ``error`` (an injected
outage: 503). The HTTP counts are those of ``/ledger/stats`` (``requests``, ``rate_limited``,
``injected_failures``).

``hexcast_sim_faults_total{kind}``: each fault injected: ``error`` (a 503), ``garbled`` (an
accepted request answered with an unreadable body), ``latency`` (an answer held back by
``latency_ms``), ``duplicate_callback``, ``shuffled_callbacks`` (a chunk of receipts posted out
of order), ``failed_delivery`` (a receipt turned failed by ``deliver_fail_rate``), and the
SMSC's ``smpp_bind_refused``, ``smpp_slow_answer``, ``smpp_dropped_connection`` and
``smpp_queue_full`` (``ESME_RMSGQFUL`` past ``smpp_queue_full_per_s``).
"""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["FAULTS", "REQUESTS", "count_fault", "count_request"]

REQUESTS = Counter("hexcast_sim_requests", "Send requests provider-sim answered, by outcome",
                   ["dialect", "outcome"])
FAULTS = Counter("hexcast_sim_faults", "Faults provider-sim injected, by kind", ["kind"])


def count_request(dialect: str, outcome: str) -> None:
    REQUESTS.labels(dialect, outcome).inc()


def count_fault(kind: str, n: int = 1) -> None:
    if n > 0:
        FAULTS.labels(kind).inc(n)

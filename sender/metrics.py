"""The sender's Prometheus metrics (issue 23's catalogue), kept in process and counted where the
work happens: the message log's moves (``sender.journal``, the api's receipts and inbound
replies, the scheduler's releases), provider calls (``sender.dispatch``, ``sender.reconcile``),
the grants' waits (``sender.grants``), the breakers (``sender.routing``) and dead letters
(``sender.agents``, ``sender.dlr``). A scrape reads these objects and nothing else; the gauges
that need Redis (route states, DLQ depth) are refreshed by each sender process on a timer
(``sender.gauges``).

Label values: ``tenant`` the tenant id, ``lane`` a lane, ``provider`` the route's name ("" when
the message is with none), ``state`` a message state, ``code`` a provider's error code, and the
short reasons of :func:`deferral_reason` and :func:`letter_reason`. Counts go in groups: one
``inc(n)`` per label set of a statement's rows, never one per message.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import Counter, Gauge, Histogram

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable

__all__ = [
    "BREAKER_STATE", "BREAKER_STATES", "DEFERRED", "DLQ_DEPTH", "DLQ_LETTERS", "HELP_REQUESTS",
    "LETTER_REASONS", "MESSAGES", "OPTOUTS", "PROVIDER_ERRORS", "PROVIDER_REQUEST_SECONDS",
    "PROVIDER_THROTTLED", "RATE_LIMITS", "RATE_LIMIT_WAITS", "RATE_LIMIT_WAIT_SECONDS",
    "RECEIPT_LATENCY", "ROUTE_DISABLED", "ROUTE_DRAINED", "SEGMENTS", "SMPP_LIVE_BINDS",
    "MessageKey", "Settled", "breaker_moved", "call_outcome", "count_deferred", "count_errors",
    "count_letters", "count_moves", "count_optouts", "count_receipts", "count_segments",
    "deferral_reason", "error_code", "letter_reason", "observe_call", "start_routes",
]

MessageKey = tuple[int, str, str | None]
"""A moved message's (tenant id, lane, provider it is with)."""


class Settled(Protocol):
    """A row of ``repo.apply_receipts`` (by column name)."""

    def __getitem__(self, key: str, /) -> Any: ...


MESSAGES = Counter("hexcast_messages", "Messages moved into a state",
                   ["tenant", "lane", "provider", "state"])
SEGMENTS = Counter("hexcast_segments", "Segments a provider accepted",
                   ["tenant", "lane", "provider"])
PROVIDER_REQUEST_SECONDS = Histogram(
    "hexcast_provider_request_seconds", "One adapter call to a provider (a batch, or a lookup)",
    ["provider", "operation", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
RECEIPT_LATENCY = Histogram(
    "hexcast_receipt_latency_seconds", "Provider acceptance to the final receipt", ["provider"],
    buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
             21600.0, 86400.0))
PROVIDER_ERRORS = Counter("hexcast_provider_errors",
                          "Provider error codes: submit rejections and failed receipts",
                          ["tenant", "provider", "code"])
PROVIDER_THROTTLED = Counter("hexcast_provider_throttled", "Provider 429 / throttling answers",
                             ["provider"])
BREAKER_STATE = Gauge("hexcast_breaker_state", "Circuit breaker state (one-hot) in this process",
                      ["provider", "state"])
ROUTE_DRAINED = Gauge("hexcast_route_drained", "1 while an operator drains the route",
                      ["provider"])
ROUTE_DISABLED = Gauge("hexcast_route_disabled", "1 while an operator disabled the route",
                       ["provider"])
RATE_LIMIT_WAITS = Counter("hexcast_rate_limit_waits", "Grants that had to wait, by what held them",
                           ["lane", "limit"])
RATE_LIMIT_WAIT_SECONDS = Counter("hexcast_rate_limit_wait_seconds",
                                  "Seconds grants waited, by what held them", ["lane", "limit"])
DLQ_LETTERS = Counter("hexcast_dlq_letters", "Dead letters written", ["lane", "reason"])
DLQ_DEPTH = Gauge("hexcast_dlq_depth",
                  "Dead letters the senders wrote and `hexcast dlq replay` has not replayed")
DEFERRED = Counter("hexcast_deferred", "Messages deferred, by rule", ["tenant", "lane", "reason"])
OPTOUTS = Counter("hexcast_optouts", "Numbers opted out (campaign: of the message answered)",
                  ["tenant", "campaign"])
HELP_REQUESTS = Counter("hexcast_help_requests", "HELP replies", ["tenant"])
SMPP_LIVE_BINDS = Gauge("hexcast_smpp_live_binds", "SMPP binds up in this process", ["provider"])

BREAKER_STATES = ("closed", "open", "half_open")
RATE_LIMITS = ("requests", "segments", "pace", "breaker", "no_route")
"""What a grant waits for: the route's requests/s, its segments (the account's rate, the lane's
share, the tenant's fair share), a paced run's pace, an open breaker, or any route at all."""
LETTER_REASONS = ("invalid", "gave_up", "refused", "no_route", "poison", "receipt", "other")
_LETTER_MARKS = (("failed on its own", "poison"), ("invalid send request", "invalid"),
                 ("gave up after", "gave_up"), ("refused the request", "refused"),
                 ("no provider serves", "no_route"), ("receipt for", "receipt"))
_CODE_MAX = 40


def start_routes(lane: str, providers: Sequence[str]) -> None:
    """A sender's series from its start (rates start at zero, not at the first event): each
    route's breaker closed, no 429 yet, not drained nor disabled; no wait and no letter yet."""
    for name in providers:
        breaker_moved(name, "closed")
        PROVIDER_THROTTLED.labels(provider=name)
        ROUTE_DRAINED.labels(provider=name).set(0)
        ROUTE_DISABLED.labels(provider=name).set(0)
    for limit in RATE_LIMITS:
        RATE_LIMIT_WAITS.labels(lane=lane, limit=limit)
        RATE_LIMIT_WAIT_SECONDS.labels(lane=lane, limit=limit)
    for reason in LETTER_REASONS:
        DLQ_LETTERS.labels(lane=lane, reason=reason)


def breaker_moved(provider: str, state: str) -> None:
    for option in BREAKER_STATES:
        BREAKER_STATE.labels(provider=provider, state=option).set(1 if option == state else 0)


def count_moves(state: str, moved: Iterable[MessageKey]) -> None:
    """Messages that moved into ``state``: one ``inc`` per (tenant, lane, provider)."""
    for (tenant, lane, provider), n in Tally(moved).items():
        MESSAGES.labels(tenant=str(tenant), lane=str(lane), provider=provider or "",
                        state=state).inc(n)


def count_segments(accepted: Iterable[tuple[MessageKey, int]]) -> None:
    """Segments of accepted messages, summed per (tenant, lane, provider)."""
    sums: dict[MessageKey, int] = {}
    for key, segments in accepted:
        sums[key] = sums.get(key, 0) + segments
    for (tenant, lane, provider), n in sums.items():
        SEGMENTS.labels(tenant=str(tenant), lane=str(lane), provider=provider or "").inc(n)


def count_errors(errors: Iterable[tuple[int, str | None, str]]) -> None:
    """(tenant, provider, code) of provider errors, one ``inc`` per distinct triple."""
    for (tenant, provider, code), n in Tally(errors).items():
        PROVIDER_ERRORS.labels(tenant=str(tenant), provider=provider or "", code=code).inc(n)


def count_receipts(changed: Sequence[Settled], *, codes: Mapping[str, str] | None = None,
                   from_provider: bool = True) -> None:
    """Messages a receipt settled, rows of ``repo.apply_receipts``: their moves and, for a
    provider's receipt (not an operator's resolution), the code of each failure (``codes`` by
    message key, else the row's error) and the acceptance → receipt latency.

    The rows are those the statement's UPDATE changed, so a message is observed once however
    many receipts name it and however many settles race for it (a duplicate, a retried
    callback, a final state already applied: no row). The histogram is per route, every
    tenant's messages together. A receipt that settles a message before its acceptance was
    committed (no ``sent_at`` yet) is timed from the claim (``queued → sending``)."""
    for state in {str(c["state"]) for c in changed}:
        count_moves(state, ((c["tenant_id"], c["lane"], c["provider"]) for c in changed
                            if c["state"] == state))
    if from_provider:
        count_errors((c["tenant_id"], c["provider"],
                      error_code((codes or {}).get(c["message_key"]) or c["error"]))
                     for c in changed if c["state"] == "failed")
        for c in changed:
            if c["receipt_s"] is not None:
                RECEIPT_LATENCY.labels(provider=c["provider"] or "").observe(
                    max(0.0, float(c["receipt_s"])))


def count_deferred(reason: str, deferred: Iterable[MessageKey]) -> None:
    """Deferrals by rule (``reason``: a message's deferral reason, see :func:`deferral_reason`)."""
    label = deferral_reason(reason)
    for (tenant, lane, _), n in Tally(deferred).items():
        DEFERRED.labels(tenant=str(tenant), lane=str(lane), reason=label).inc(n)


def count_letters(lane: str, reasons: Iterable[str]) -> None:
    for reason, n in Tally(map(letter_reason, reasons)).items():
        DLQ_LETTERS.labels(lane=lane, reason=reason).inc(n)


def count_optouts(tenants: Iterable[int], campaign: int | None = None) -> None:
    """New opt-outs (one tenant id each) of ``campaign`` (None: not attributable)."""
    for tenant, n in Tally(tenants).items():
        OPTOUTS.labels(tenant=str(tenant), campaign="" if campaign is None else str(campaign)
                       ).inc(n)


def deferral_reason(reason: str) -> str:
    """The rule in a deferral's reason ("quiet hours until …", "recipient cap until …"):
    quiet_hours, tenant_window, recipient_cap, reserved, send_at, or other."""
    if reason.startswith("quiet hours (tenant window"):
        return "tenant_window"
    for start, label in (("quiet hours", "quiet_hours"), ("recipient cap", "recipient_cap"),
                         ("reserved", "reserved"), ("send_at", "send_at")):
        if reason.startswith(start):
            return label
    return "other"


def letter_reason(reason: str) -> str:
    """A dead letter's reason as one of :data:`LETTER_REASONS`."""
    return next((label for mark, label in _LETTER_MARKS if mark in reason), "other")


def error_code(error: str | None) -> str:
    """A provider's code from its error text ("21610: unsubscribed" → "21610"), at most 40
    characters; "unknown" when it gave none."""
    code = (error or "").split(":", 1)[0].strip()
    return code[:_CODE_MAX] or "unknown"


def observe_call(provider: str, operation: str, failure: ProviderError | None,
                 started: float) -> None:
    """One adapter call (``operation`` submit or lookup) begun at ``started``
    (``time.perf_counter()``) that ended with ``failure`` (None: answered)."""
    PROVIDER_REQUEST_SECONDS.labels(provider=provider, operation=operation,
                                    outcome=call_outcome(failure)).observe(
        time.perf_counter() - started)


def call_outcome(failure: ProviderError | None) -> str:
    """ok, throttled (429 / throttling), timeout (sent, no answer: ambiguous) or error."""
    if failure is None:
        return "ok"
    if isinstance(failure, ProviderRateLimited):
        return "throttled"
    if isinstance(failure, ProviderUnavailable) and failure.ambiguous:
        return "timeout"
    return "error"

"""The sender's and the webhooks worker's metrics: the pure helpers that name and group what is
counted, and why a scrape runs no query (``sender.metrics``, ``sender.webhooks.metrics``).

A scrape of a process's ``/metrics`` calls ``collect()`` on what is registered. The modules'
metrics are plain prometheus-client counters, gauges and histograms, none computed by a function
at scrape time, and the modules import nothing that reaches PostgreSQL or Redis: so a scrape
reads memory only, whatever the size of the message log (the gauges that need a query are
refreshed by their process on a timer, ``sender.gauges`` and the webhooks worker).
"""

from __future__ import annotations

import ast
import inspect
from types import ModuleType

import pytest
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from sender import metrics
from sender.webhooks import metrics as webhook_metrics

TENANT = 987_654  # a tenant id no other test counts for


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(("reason", "label"), [
    ("quiet hours until ", "quiet_hours"),
    ("quiet hours (tenant window 10:00-18:00) until ", "tenant_window"),
    ("recipient cap until ", "recipient_cap"),
    ("reserved until ", "reserved"),
    ("send_at", "send_at"),
    ("something new until ", "other"),
])
def test_a_deferral_is_counted_by_its_rule(reason: str, label: str) -> None:
    assert metrics.deferral_reason(reason) == label


@pytest.mark.parametrize(("reason", "label"), [
    ("invalid send request: items.0.phone: bad", "invalid"),
    ("gave up after 3 attempts", "gave_up"),
    ("acct refused the request: HTTP 400", "refused"),
    ("no provider serves lane bulk for tenant 4", "no_route"),
    ("failed on its own: gave up after 3 attempts (message k1)", "poison"),
    ("receipt for 'k1' not applied: value too long", "receipt"),
    ("who knows", "other"),
])
def test_a_dead_letter_is_counted_by_its_kind(reason: str, label: str) -> None:
    assert metrics.letter_reason(reason) == label
    assert label in metrics.LETTER_REASONS


@pytest.mark.parametrize(("error", "code"), [
    ("21610: Attempt to send to unsubscribed recipient", "21610"),
    ("undeliverable", "undeliverable"),
    (None, "unknown"),
    ("", "unknown"),
    ("x" * 100, "x" * 40),
])
def test_an_error_code_is_short_and_bounded(error: str | None, code: str) -> None:
    assert metrics.error_code(error) == code


@pytest.mark.parametrize(("failure", "outcome"), [
    (None, "ok"),
    (ProviderRateLimited("busy", retry_after=1.0), "throttled"),
    (ProviderUnavailable("read timeout", ambiguous=True), "timeout"),
    (ProviderUnavailable("HTTP 503"), "error"),
    (ProviderError("refused"), "error"),
])
def test_a_provider_call_has_one_of_four_outcomes(failure: ProviderError | None, outcome: str
                                                  ) -> None:
    assert metrics.call_outcome(failure) == outcome


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "ok"), (204, "ok"), (410, "gone"), (429, "throttled"), (503, "throttled"),
    (500, "rejected"), (301, "rejected"), (None, "unreachable"),
])
def test_a_webhook_attempt_is_named_by_its_answer(status: int | None, outcome: str) -> None:
    assert webhook_metrics.attempt_outcome(status) == outcome


def test_moves_are_counted_once_per_group() -> None:
    tenant = str(TENANT)
    before = _value("hexcast_messages_total", tenant=tenant, lane="bulk", provider="a",
                    state="accepted")
    metrics.count_moves("accepted", [(TENANT, "bulk", "a")] * 3 + [(TENANT, "bulk", None)])
    assert _value("hexcast_messages_total", tenant=tenant, lane="bulk", provider="a",
                  state="accepted") == before + 3
    assert _value("hexcast_messages_total", tenant=tenant, lane="bulk", provider="",
                  state="accepted") >= 1


def test_receipts_count_states_codes_and_latency() -> None:
    tenant, provider = TENANT + 1, "receipts-route"
    rows = [{"tenant_id": tenant, "lane": "geo", "provider": provider, "state": "delivered",
             "message_key": "k1", "error": None, "receipt_s": 3.0},
            {"tenant_id": tenant, "lane": "geo", "provider": provider, "state": "failed",
             "message_key": "k2", "error": "acct: 30003 permanent", "receipt_s": 4.0},
            {"tenant_id": tenant, "lane": "geo", "provider": provider, "state": "failed",
             "message_key": "k3", "error": "EXPIRED", "receipt_s": None}]
    metrics.count_receipts(rows, codes={"k2": "30003"})
    mine = {"tenant": str(tenant), "lane": "geo", "provider": provider}
    assert _value("hexcast_messages_total", state="delivered", **mine) == 1
    assert _value("hexcast_messages_total", state="failed", **mine) == 2
    errors = {"tenant": str(tenant), "provider": provider}
    assert _value("hexcast_provider_errors_total", code="30003", **errors) == 1
    assert _value("hexcast_provider_errors_total", code="EXPIRED", **errors) == 1
    assert _value("hexcast_receipt_latency_seconds_count", provider=provider) == 2
    assert _value("hexcast_receipt_latency_seconds_sum", provider=provider) == 7.0


def test_an_operators_resolution_is_no_provider_error() -> None:
    tenant, provider = TENANT + 3, "resolved-route"
    metrics.count_receipts([{"tenant_id": tenant, "lane": "bulk", "provider": provider,
                             "state": "failed", "message_key": "k1", "receipt_s": 9.0,
                             "error": "resolved by operator: not in the SMSC's records"}],
                           from_provider=False)
    assert _value("hexcast_messages_total", tenant=str(tenant), lane="bulk", provider=provider,
                  state="failed") == 1
    assert REGISTRY.get_sample_value("hexcast_provider_errors_total", {
        "tenant": str(tenant), "provider": provider, "code": "resolved by operator"}) is None
    assert _value("hexcast_receipt_latency_seconds_count", provider=provider) == 0


def test_segments_and_deferrals_add_up_by_group() -> None:
    tenant = TENANT + 2
    metrics.count_segments([((tenant, "bulk", "s"), 2), ((tenant, "bulk", "s"), 3)])
    assert _value("hexcast_segments_total", tenant=str(tenant), lane="bulk", provider="s") == 5
    metrics.count_deferred("recipient cap until ", [(tenant, "geo", None)] * 2)
    assert _value("hexcast_deferred_total", tenant=str(tenant), lane="geo",
                  reason="recipient_cap") == 2


def test_a_breaker_state_is_one_hot() -> None:
    metrics.breaker_moved("hot-route", "open")
    metrics.breaker_moved("hot-route", "half_open")
    assert {s: _value("hexcast_breaker_state", provider="hot-route", state=s)
            for s in metrics.BREAKER_STATES} == {"closed": 0, "open": 0, "half_open": 1}


def test_a_sender_starts_with_its_routes_series() -> None:
    metrics.start_routes("otp", ["fresh-route"])
    assert REGISTRY.get_sample_value("hexcast_provider_throttled_total",
                                     {"provider": "fresh-route"}) == 0
    assert REGISTRY.get_sample_value("hexcast_breaker_state",
                                     {"provider": "fresh-route", "state": "closed"}) == 1
    for limit in metrics.RATE_LIMITS:
        assert REGISTRY.get_sample_value("hexcast_rate_limit_waits_total",
                                         {"lane": "otp", "limit": limit}) is not None


def test_webhook_gauges_drop_endpoints_that_are_gone() -> None:
    webhook_metrics.show_failing({(TENANT, 1): True, (TENANT, 2): False})
    webhook_metrics.show_failing({(TENANT, 2): True})
    labels = {"tenant": str(TENANT)}
    assert REGISTRY.get_sample_value("hexcast_webhook_endpoint_failing",
                                     {**labels, "endpoint": "1"}) is None
    assert _value("hexcast_webhook_endpoint_failing", endpoint="2", **labels) == 1


@pytest.mark.parametrize("module", [metrics, webhook_metrics])
def test_a_scrape_reads_memory_only(module: ModuleType) -> None:
    found = [v for v in vars(module).values() if isinstance(v, MetricWrapperBase)]
    assert len(found) >= 4
    for metric in found:
        assert type(metric) in (Counter, Gauge, Histogram)  # no collector of our own
        children = list(metric._metrics.values()) if metric._labelnames else [metric]
        for child in children:  # Gauge.set_function would run code at each scrape
            assert "_child_samples" not in vars(child), metric
    imported = _imports(module)
    assert not {m for m in imported
                if m.split(".")[0] in ("asyncpg", "redis", "aiokafka", "httpx")
                or m in ("hexcast.core.db", "hexcast.core.cache", "hexcast.core.bus")
                or m.startswith("sender.") and m.endswith(("repo", "queue"))}


def _imports(module: ModuleType) -> set[str]:
    tree = ast.parse(inspect.getsource(module))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found

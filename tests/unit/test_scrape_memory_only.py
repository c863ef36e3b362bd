"""A scrape reads memory only, in every process: every collector in the registry, once every
process's metrics module is imported, is a plain ``Counter``/``Gauge``/``Histogram``/``Info``
(no collector of our own, no ``Gauge.set_function``) or one of prometheus-client's own process,
platform and GC collectors. Gauges known only by asking (lag, DLQ depth, backlog) are set by a
timer (:func:`hexcast.core.metrics.refresh_every`), never by the scrape."""

from __future__ import annotations

import importlib

import pytest
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

PROCESS_METRICS = ["hexcast.core.metrics", "hexcast.core.http_metrics", "hexcast.core.kafka_lag",
                   "sender.metrics", "sender.webhooks.metrics", "scheduler.metrics",
                   "streams.metrics", "providersim.metrics"]
LIBRARY_COLLECTORS = (ProcessCollector, PlatformCollector, GCCollector)


@pytest.fixture(scope="module")
def collectors() -> list[Collector]:
    for name in PROCESS_METRICS:
        importlib.import_module(name)
    return list(REGISTRY._collector_to_names)


def test_every_process_metrics_module_registers_metrics(collectors: list[Collector]) -> None:
    names = {n for c in collectors for n in REGISTRY._collector_to_names[c]}
    for prefix in ("hexcast_process", "hexcast_http_request", "hexcast_kafka_consumer_lag",
                   "hexcast_scheduler_released", "hexcast_matcher_visits", "hexcast_sim_requests",
                   "hexcast_webhook"):
        assert any(n.startswith(prefix) for n in names), prefix


def test_no_collector_runs_code_at_scrape(collectors: list[Collector]) -> None:
    ours = [c for c in collectors if not isinstance(c, LIBRARY_COLLECTORS)]
    assert len(ours) > 40
    for metric in ours:
        assert type(metric) in (Counter, Gauge, Histogram, Info), metric
        assert isinstance(metric, MetricWrapperBase)
        children = list(metric._metrics.values()) if metric._labelnames else [metric]
        for child in children:  # Gauge.set_function replaces _child_samples with a callback
            assert "_child_samples" not in vars(child), metric

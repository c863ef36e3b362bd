"""The one faust application factory. Agents register with it in each domain's agents.py.

In the core, not the app layer: every domain's agents declare their topics with
:func:`raw_topic`, and the sender took it from ``streams`` (a cycle between domains)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from hexcast.core.settings import Settings
from hexcast.core.watchdog import LoopWatchdog

__all__ = ["create_faust_app", "raw_topic", "run_worker"]


def create_faust_app(settings: Settings, *, role: str) -> faust.App:
    """A faust app for one process role (``matcher``, ``sender-geo``...): its consumer group.

    Settings for an at-least-once pipeline: no transactions (the local broker has none), JSON
    records only, a short rebalance timeout so restarts regain partitions quickly. Producers
    wait for every in-sync replica (acks=-1) and are idempotent where the broker can be
    (``kafka_idempotent_producer``). Faust's data directory goes under the state directory.
    """
    _patch_fetch_wait()
    _patch_idempotence()
    name = f"{settings.app_id}-{role}"
    datadir = Path(settings.state_dir) / "faust" / name
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    app = faust.App(
        name,
        datadir=str(datadir),
        broker=settings.broker_url or "kafka://127.0.0.1:9092",
        store="memory://",
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        broker_rebalance_timeout=settings.broker_rebalance_timeout,
        broker_session_timeout=max(6.0, settings.broker_rebalance_timeout),
        broker_heartbeat_interval=1.0,
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=2,
        web_enabled=False,
        value_serializer="raw",
        key_serializer="raw",
    )
    app.hexcast_fetch_max_wait_ms = settings.broker_fetch_max_wait_ms  # type: ignore[attr-defined]
    app.hexcast_idempotent = settings.kafka_idempotent_producer  # type: ignore[attr-defined]
    if settings.loop_stall_warn_ms:
        watchdog = LoopWatchdog(stall_ms=settings.loop_stall_warn_ms)

        async def watch_loop() -> None:
            await watchdog.run()

        app.task(watch_loop)
    return app


def _patch_fetch_wait() -> None:
    """Give faust's consumer our fetch wait instead of its hard-coded 1,500 ms.

    Kafka answers a waiting fetch as soon as data arrives; the local broker holds it for most
    of the wait, so each hop (api → matcher, matcher → sender) cost about 340 ms at the median
    (18 ms with 100 ms; see BENCHMARKS.md). aiokafka reads the value when the consumer starts,
    so it is set on the consumer faust has just built. Idempotent.
    """
    thread = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread, "_hexcast_patched", False):
        return
    build = thread._create_worker_consumer

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = build(self, transport)
        wait = getattr(self.app, "hexcast_fetch_max_wait_ms", None)
        if wait is not None:
            consumer._fetch_max_wait_ms = int(wait)
        return consumer

    thread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]
    thread._hexcast_patched = True  # type: ignore[attr-defined]


def _patch_idempotence() -> None:
    """Make faust's producers idempotent when ``kafka_idempotent_producer`` is on.

    Faust asks aiokafka for ``enable_idempotence`` only inside transactions (exactly-once),
    which the local broker lacks; an at-least-once app gets acks=-1 (``producer_acks``) but a
    producer retry could still write a record twice. The flag is read from the app, so each
    app decides (tansu refuses InitProducerId: off there). Idempotent.
    """
    producer = faust_aiokafka.Producer
    if getattr(producer, "_hexcast_patched", False):
        return
    extra = producer._settings_extra

    def settings_extra(self: Any) -> Mapping[str, Any]:
        settings = dict(extra(self))
        if getattr(self.app, "hexcast_idempotent", False):
            settings.update(acks="all", enable_idempotence=True)
        return settings

    producer._settings_extra = settings_extra  # type: ignore[method-assign]
    producer._hexcast_patched = True  # type: ignore[attr-defined]


def raw_topic(app: faust.App, settings: Settings, name: str, **kwargs: Any) -> Any:
    """A topic of JSON bytes; our pydantic records encode and decode the values."""
    return app.topic(
        settings.topic(name), key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw", **kwargs,
    )


def run_worker(app: faust.App, *, loglevel: str) -> None:
    """Run a faust worker in the foreground until SIGTERM/SIGINT."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # At WARNING and above faust keeps its terminal spinner, which sets the root logger to
    # DEBUG: every library's debug call (aiokafka logs each produce) then builds a LogRecord,
    # about 3% of a bulk sender's CPU. We have no terminal to spin on.
    worker.spinner = None
    worker.execute_from_commandline()

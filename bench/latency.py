"""Latency from data the pipeline really carries.

A visit record's ``received_at`` is the API's accept time; the geo send batch the matcher
emits (same key: ``<tenant>:<user>``) carries ``created_at``; the provider ledger has the
message key as ``client_ref`` and its ``accepted_at``. Each user posts once per run, so the
key joins them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer

from bench.common import percentile
from bench.kafka import assign_at_end, partitions
from sender.models import SendBatch
from streams.models import VisitRecord

__all__ = ["Collector", "LatencyReport", "ledger_since", "latency_report"]


@dataclass
class Collector:
    """Reads ``visits`` and ``send.<lane>`` from their end offsets at ``start()`` on."""

    bootstrap: str
    visits_topic: str
    sends_topic: str
    received: dict[bytes, datetime] = field(default_factory=dict)
    seen: dict[bytes, datetime] = field(default_factory=dict)  # when this reader got the visit
    emitted: dict[bytes, datetime] = field(default_factory=dict)
    keys: dict[str, bytes] = field(default_factory=dict)  # message key -> visit key
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, fetch_max_wait_ms=50)
        await consumer.start()
        tps = await partitions(consumer, self.visits_topic) + await partitions(consumer, self.sends_topic)
        await assign_at_end(consumer, tps)
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=100, max_records=2000)
                for tp, messages in batches.items():
                    for m in messages:
                        if m.key is not None and m.value is not None:
                            self._take(tp.topic, m.key, m.value)
        finally:
            await consumer.stop()

    def _take(self, topic: str, key: bytes, value: bytes) -> None:
        if topic == self.visits_topic:
            self.received.setdefault(key, VisitRecord.decode(value).received_at)
            self.seen.setdefault(key, datetime.now(UTC))
            return
        batch = SendBatch.decode(value)
        self.emitted.setdefault(key, batch.created_at)
        for item in batch.items:
            self.keys.setdefault(item.message_key, key)

    def clear(self) -> None:
        """Forget what was read so far (the probes), keep reading."""
        self.received.clear()
        self.seen.clear()
        self.emitted.clear()
        self.keys.clear()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def ledger_since(sim: httpx.AsyncClient, after: int) -> dict[str, datetime]:
    """client_ref -> accepted_at for the provider ledger's entries after ``after``."""
    found: dict[str, datetime] = {}
    while True:
        page = (await sim.get("/ledger", params={"after": after, "limit": 10_000})).json()
        for item in page["items"]:
            found[item["client_ref"]] = datetime.fromisoformat(item["accepted_at"])
        after += len(page["items"])
        if not page["items"] or after >= page["total"]:
            return found


@dataclass(frozen=True)
class LatencyReport:
    records: int
    broker_p50_ms: float  # accept → read back from the broker by the bench (API + broker + a fetch)
    broker_p99_ms: float
    matched: int
    ledgered: int
    send_p50_ms: float
    send_p99_ms: float
    ledger_p50_ms: float
    ledger_p99_ms: float
    ledger_per_s: float  # how fast the geo sender drained them: ledgered / (last - first)


def latency_report(c: Collector, ledger: dict[str, datetime]) -> LatencyReport:
    """p50/p99 accept → send request and accept → provider ledger, in milliseconds."""
    send = [(at - c.received[k]).total_seconds() * 1000 for k, at in c.emitted.items() if k in c.received]
    broker = [(at - c.received[k]).total_seconds() * 1000 for k, at in c.seen.items()]
    ours = [at for mk, at in ledger.items() if mk in c.keys and c.keys[mk] in c.received]
    led = [(at - c.received[c.keys[mk]]).total_seconds() * 1000
           for mk, at in ledger.items() if mk in c.keys and c.keys[mk] in c.received]
    span = (max(ours) - min(ours)).total_seconds() if len(ours) > 1 else 0.0
    return LatencyReport(len(c.received), percentile(broker, 50), percentile(broker, 99), len(send),
                         len(led), percentile(send, 50), percentile(send, 99), percentile(led, 50),
                         percentile(led, 99), len(ours) / span if span else 0.0)

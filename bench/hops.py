"""One broker hop's latency against how many record batches its partitions already hold.

A hop: one record produced (acks=all, on its own, as the api publishes a post) and read back
by a consumer waiting at the end of the partition (100 ms fetch wait, the workers' setting).
Measured on an empty topic, then after ``records`` records were written in batches of
``per_batch``: the api's batches are that small (one post's records, spread over the
partitions), so a burst of a million visits leaves hundreds of thousands of batches behind.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import percentile
from bench.kafka import assign_at_end
from hexcast.core.kafka import TopicSpec, delete_topics, ensure_topics

__all__ = ["HopLatency", "broker_hops"]

_PARTITIONS = 4
_VALUE = b"v" * 300  # about a 1-event visit record


@dataclass(frozen=True)
class HopLatency:
    records: int  # already in the topic when measured
    batches: int
    produce_p50_ms: float
    produce_p99_ms: float
    hop_p50_ms: float
    hop_p99_ms: float


async def _fill(producer: AIOKafkaProducer, topic: str, *, records: int, per_batch: int) -> int:
    batches, pending = 0, []
    for start in range(0, records, per_batch):
        batch = producer.create_batch()
        for n in range(start, min(records, start + per_batch)):
            batch.append(key=f"f{n}".encode(), value=_VALUE, timestamp=None)
        batch.close()
        pending.append(await producer.send_batch(batch, topic, partition=batches % _PARTITIONS))
        batches += 1
        if len(pending) >= 400:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    return batches


async def _hops(bootstrap: str, producer: AIOKafkaProducer, topic: str, *, probes: int,
                gap_s: float) -> tuple[list[float], list[float]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    await consumer.start()
    try:
        await assign_at_end(consumer, [TopicPartition(topic, p) for p in range(_PARTITIONS)])
        sent: dict[bytes, float] = {}
        got: dict[bytes, float] = {}

        async def read() -> None:
            while len(got) < probes:
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    got.update((m.key, time.monotonic()) for m in messages if m.key in sent)

        reader = asyncio.create_task(read())
        acks = []
        for n in range(probes):
            key = f"probe{n}".encode()
            sent[key] = time.monotonic()
            await producer.send_and_wait(topic, _VALUE, key=key, partition=n % _PARTITIONS)
            acks.append((time.monotonic() - sent[key]) * 1000)
            await asyncio.sleep(gap_s)
        await asyncio.wait_for(reader, 120)
        return acks, [(got[k] - sent[k]) * 1000 for k in sent]
    finally:
        await consumer.stop()


async def broker_hops(bootstrap: str, *, records: int, per_batch: int = 4,
                      probes: int = 200, gap_s: float = 0.02) -> list[HopLatency]:
    """Hop latency with an empty topic, then with ``records`` records in it."""
    topic = f"bench.hops.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: TopicSpec(partitions=_PARTITIONS)})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    found: list[HopLatency] = []
    try:
        batches = 0
        for fill in (0, records):
            batches += await _fill(producer, topic, records=fill, per_batch=per_batch)
            acks, hops = await _hops(bootstrap, producer, topic, probes=probes, gap_s=gap_s)
            found.append(HopLatency(fill, batches, percentile(acks, 50), percentile(acks, 99),
                                    percentile(hops, 50), percentile(hops, 99)))
    finally:
        await producer.stop()
        await delete_topics(bootstrap, [topic])
    return found

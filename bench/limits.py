"""The raw limits a scenario is measured against, on the same machine in the same run."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import ui
from bench.common import Procs, Timer, bench_settings
from bench.hops import broker_hops
from hexcast.core.kafka import TopicSpec, delete_topics, ensure_topics
from hexcast.testing import make_tenant
from sender.keys import bulk_key

__all__ = ["BrokerLimit", "broker_limit", "copy_limit", "run_limits", "sim_limit"]


async def copy_limit(dsn: str, *, tenant_id: int, rows: int) -> float:
    """COPY rows/s into ``messages`` (with its unique message key), in 50,000-row copies."""
    conn = await asyncpg.connect(dsn)
    run = uuid.uuid4().int % 1_000_000_000
    try:
        timer = Timer()
        for start in range(0, rows, 50_000):
            batch = [
                (bulk_key(campaign_run_id=run, recipient_id=n), tenant_id, "bulk", "+12025550100", "x")
                for n in range(start, min(rows, start + 50_000))
            ]
            await conn.copy_records_to_table(
                "messages", records=batch,
                columns=["message_key", "tenant_id", "lane", "phone", "body"],
            )
        rate = timer.rate(rows)
        await conn.execute("DELETE FROM messages WHERE tenant_id = $1", tenant_id)
        return rate
    finally:
        await conn.close()


@dataclass(frozen=True)
class BrokerLimit:
    records: int
    record_bytes: int
    produce_per_s: float
    consume_per_s: float


def _chunk_payload(size: int) -> bytes:
    items = [{"message_key": bulk_key(campaign_run_id=1, recipient_id=n), "tenant_id": 1,
              "phone": "+12025550100", "body": "Black Friday: 30% off everything until midnight"}
             for n in range(size)]
    return json.dumps({"v": 1, "lane": "bulk", "items": items,
                       "created_at": datetime.now(UTC).isoformat()}).encode()


async def broker_limit(bootstrap: str, *, records: int, chunk: int) -> BrokerLimit:
    """Produce (acks=all) then consume ``records`` records of ``chunk`` recipients each."""
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: TopicSpec(partitions=4)})
    payload = _chunk_payload(chunk)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_request_size=8_388_608, max_batch_size=1_048_576)
    await producer.start()
    try:
        timer = Timer()
        futures = [await producer.send(topic, payload, key=str(n).encode()) for n in range(records)]
        await asyncio.gather(*futures)
        produce = timer.rate(records)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, fetch_max_bytes=52_428_800,
                                max_partition_fetch_bytes=8_388_608)
    await consumer.start()
    try:
        timer, seen = Timer(), 0
        while seen < records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            seen += sum(len(v) for v in batches.values())
        consume = timer.rate(records)
    finally:
        await consumer.stop()
        await delete_topics(bootstrap, [topic])
    return BrokerLimit(records, len(payload), produce, consume)


async def sim_limit(url: str, token: str, *, requests: int, batch: int, concurrency: int = 8) -> float:
    """Destinations/s provider-sim accepts in ``batch``-sized requests."""
    run = uuid.uuid4().hex[:8]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            messages = [{"client_ref": f"lim-{run}-{n}-{i}", "to": "+12025550100", "body": "x"}
                        for i in range(batch)]
            response = await client.post("/v1/batches", json={"messages": messages})
            response.raise_for_status()

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        timer = Timer()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return timer.rate(requests * batch)


def run_limits(broker_url: str, dsn: str, *, recipients: int, chunk: int = 1000) -> dict[str, Any]:
    """The raw limits, sized from the scenario (at most 1M rows/recipients each)."""
    size = min(recipients, 1_000_000)
    settings = bench_settings(broker_url, dsn)
    out: dict[str, Any] = {"chunk": chunk, "rows": size}
    bar = ui.task("limits: COPY, broker, broker hops, provider-sim", 4)
    tenant = asyncio.run(make_tenant(dsn, prefix="limits")).id
    out["copy_rows_per_s"] = asyncio.run(copy_limit(dsn, tenant_id=tenant, rows=size))
    ui.step(bar, 1)
    records = max(50, size // chunk)
    broker = asyncio.run(broker_limit(settings.bootstrap_servers, records=records, chunk=chunk))
    out["broker_produce_per_s"], out["broker_consume_per_s"] = broker.produce_per_s, broker.consume_per_s
    out["broker_record_bytes"] = broker.record_bytes
    ui.step(bar, 2)
    hops = asyncio.run(broker_hops(settings.bootstrap_servers, records=size))
    out["broker_hops"] = [asdict(h) for h in hops]
    ui.step(bar, 3)
    with Procs(settings) as procs:
        procs.serve()
        out["sim_destinations_per_s"] = asyncio.run(sim_limit(
            settings.provider_url, settings.provider_token, requests=max(50, size // 1000), batch=1000))
    ui.step(bar, 4)
    return out

"""The api alone as a real child process, with a tenant key, for tests of its HTTP boundary."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from hexcast.core.kafka import delete_topics
from hexcast.core.settings import Settings
from hexcast.core.topics import create_topics, topic_specs
from hexcast.devstack.procs import ChildProcess, free_port, hexcast_process, wait_http
from hexcast.testing import make_settings, make_tenant

__all__ = ["RunningApi", "memory_kb", "published", "running_api"]


@dataclass(frozen=True)
class RunningApi:
    url: str
    settings: Settings
    child: ChildProcess
    tenant_id: int
    key: str


@contextlib.contextmanager
def running_api(broker_url: str, database_url: str, log_dir: Path, **extra: object) -> Iterator[RunningApi]:
    """An api process on a free port (its topics created, and deleted after) and a new tenant."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(broker_url, database_url, api_port=port, api_public_url=url, **extra)
    asyncio.run(create_topics(settings))
    child = hexcast_process("api", ["api"], env=settings.to_env(), log_dir=log_dir)
    child.spawn()
    try:
        wait_http(f"{url}/health", child=child)
        tenant = asyncio.run(make_tenant(database_url, prefix="boundary"))
        yield RunningApi(url=url, settings=settings, child=child, tenant_id=tenant.id, key=tenant.api_key)
    finally:
        child.terminate()
        asyncio.run(delete_topics(settings.bootstrap_servers, topic_specs(settings)))


async def _count(settings: Settings, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(settings.topic(topic), p) for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        count = 0
        async with asyncio.timeout(30):
            while [p for p in parts if await consumer.position(p) < ends[p]]:
                batches = await consumer.getmany(*parts, timeout_ms=200)
                count += sum(len(records) for records in batches.values())
        return count
    finally:
        await consumer.stop()


def published(settings: Settings, topic: str = "visits") -> int:
    """Records ever written to ``topic``, counted by reading them: the embedded broker's end
    offsets move by one per produced batch, not per record, when records share a partition."""
    return asyncio.run(_count(settings, topic))


def memory_kb(pid: int, field: str) -> int:
    """A memory figure of process ``pid`` from ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise LookupError(f"{field} not in /proc/{pid}/status")

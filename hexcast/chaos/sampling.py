"""What a soak samples every minute: each process's memory, file descriptors and CPU time, the
size of every PostgreSQL table and its indexes, Redis memory and keys, the records in each
topic, and the messages in each state.

Processes are read from ``/proc`` (Linux): ``VmRSS`` in ``/proc/<pid>/status``, the entries of
``/proc/<pid>/fd``, and user + system time from ``/proc/<pid>/stat``; a process that is gone (or
exited and not reaped yet) is left out of the sample. A table's size is ``pg_table_size`` (heap
and TOAST, summed over the partitions of a partitioned table) and its indexes are the separate
entry ``<table>:indexes``; the two add up to ``pg_total_relation_size``. A topic's records are the
sum over its partitions of end minus beginning offset. Redis keys are counted with SCAN under the
deployment's prefix (``DBSIZE`` when the prefix is empty).

A :class:`Sample` is JSON (:meth:`Sample.to_json`), one line each in ``samples.jsonl``
(:func:`append_sample`), so a soak that crashes keeps everything sampled up to then.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import TypeAdapter, ValidationError

from hexcast.core.cache import connect_redis
from hexcast.core.db import PG_OUTAGES
from hexcast.core.kafka import bootstrap_servers
from hexcast.core.settings import Settings
from hexcast.core.topics import topic_specs

__all__ = [
    "ProcessStat", "Sample", "Sampler", "append_sample", "load_samples", "process_stat", "take_sample",
]

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_TIMEOUT_S = 60.0  # a sample that takes longer is abandoned (the clients are made again)
_GLOB = re.compile(r"([*?\[\]\\])")

_TABLES = """
SELECT c.relname AS name,
       sum(pg_table_size(coalesce(t.relid, c.oid)))::bigint AS heap,
       sum(pg_indexes_size(coalesce(t.relid, c.oid)))::bigint AS indexes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL pg_partition_tree(c.oid) t ON true
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
GROUP BY c.relname ORDER BY c.relname"""

_STATES = """
SELECT s::text AS state, count(m.state) AS n
FROM unnest(enum_range(NULL::message_state)) s LEFT JOIN messages m ON m.state = s
GROUP BY s ORDER BY s"""


@dataclass(frozen=True, slots=True)
class ProcessStat:
    """One process at one moment."""

    rss_bytes: int
    open_fds: int
    cpu_seconds: float


@dataclass(frozen=True, slots=True)
class Sample:
    """Everything sampled at one moment (``at``, UTC). ``tables``: relation → bytes, a table's
    indexes as ``<table>:indexes``; ``messages_by_state``: every state, 0 when none."""

    at: datetime
    processes: dict[str, ProcessStat]
    tables: dict[str, int]
    redis_used_bytes: int
    redis_keys: int
    topic_records: dict[str, int]
    messages_by_state: dict[str, int]

    def to_json(self) -> str:
        """One line of JSON (no newline in it)."""
        return _SAMPLE.dump_json(self).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> Sample:
        """The sample :meth:`to_json` wrote; pydantic's ValidationError if it is not one."""
        return _SAMPLE.validate_json(text)


_SAMPLE = TypeAdapter(Sample)


def process_stat(pid: int) -> ProcessStat | None:
    """``pid`` now, or None if it is gone (or a zombie: exited, not reaped yet)."""
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        status = (proc / "status").read_text()
        fds = len(os.listdir(proc / "fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rpartition(")")[2].split()  # the command name in (...) may hold spaces
    rss = [int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")]
    if fields[0] == "Z" or not rss:
        return None
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime, stime: fields 14 and 15
    return ProcessStat(rss_bytes=rss[0], open_fds=fds, cpu_seconds=cpu)


class Sampler:
    """Takes samples of one deployment, keeping its PostgreSQL connection, Redis client and a
    group-less Kafka consumer between them; a failed sample closes them (the next makes them
    again) and raises."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = sorted(topic_specs(settings))
        self._pg: asyncpg.Connection | None = None
        self._redis: aioredis.Redis | None = None
        self._kafka: AIOKafkaConsumer | None = None

    async def sample(self, pids: Mapping[str, int]) -> Sample:
        """The processes ``pids`` (name → pid) and the services, now."""
        at = datetime.now(UTC)
        processes = {name: found for name, pid in pids.items() if (found := process_stat(pid))}
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                tables, states = await self._postgres()
                used, keys = await self._redis_figures()
                records = await self._topic_records()
        except BaseException:
            await self.close()
            raise
        return Sample(at=at, processes=processes, tables=tables, redis_used_bytes=used,
                      redis_keys=keys, topic_records=records, messages_by_state=states)

    async def _postgres(self) -> tuple[dict[str, int], dict[str, int]]:
        if self._pg is None:
            self._pg = await asyncpg.connect(self.settings.database_url, timeout=10)
        tables: dict[str, int] = {}
        for row in await self._pg.fetch(_TABLES):
            tables[row["name"]] = row["heap"]
            tables[f"{row['name']}:indexes"] = row["indexes"]
        states = {row["state"]: row["n"] for row in await self._pg.fetch(_STATES)}
        return tables, states

    async def _redis_figures(self) -> tuple[int, int]:
        if self._redis is None:
            self._redis = connect_redis(self.settings.redis_url)
        used = int((await self._redis.info("memory"))["used_memory"])
        prefix = self.settings.redis_prefix
        if not prefix:
            return used, int(await self._redis.dbsize())
        pattern = _GLOB.sub(r"\\\1", prefix) + "*"
        keys = 0
        async for _ in self._redis.scan_iter(match=pattern, count=1000):
            keys += 1
        return used, keys

    async def _topic_records(self) -> dict[str, int]:
        if self._kafka is None:
            self._kafka = AIOKafkaConsumer(
                bootstrap_servers=bootstrap_servers(self.settings.bootstrap_servers), group_id=None,
                enable_auto_commit=False, request_timeout_ms=10_000)
            await self._kafka.start()
        existing = await self._kafka.topics()  # one metadata request for every topic, none named
        partitions = [TopicPartition(topic, p) for topic in self.topics if topic in existing
                      for p in sorted(self._kafka.partitions_for_topic(topic) or ())]
        if not partitions:
            return {}
        ends = await self._kafka.end_offsets(partitions)
        starts = await self._kafka.beginning_offsets(partitions)
        records = dict.fromkeys(sorted({tp.topic for tp in partitions}), 0)
        for tp in partitions:
            records[tp.topic] += max(ends[tp] - starts[tp], 0)
        return records

    async def close(self) -> None:
        pg, cache, kafka = self._pg, self._redis, self._kafka
        self._pg = self._redis = self._kafka = None
        if kafka is not None:
            await kafka.stop()
        if cache is not None:
            await cache.aclose()
        if pg is not None:
            try:
                await pg.close(timeout=5)
            except PG_OUTAGES:  # TimeoutError is an OSError
                pg.terminate()


async def take_sample(settings: Settings, pids: Mapping[str, int]) -> Sample:
    """One sample with clients of its own (a soak keeps a :class:`Sampler` instead)."""
    sampler = Sampler(settings)
    try:
        return await sampler.sample(pids)
    finally:
        await sampler.close()


def append_sample(path: Path, sample: Sample) -> None:
    """Add ``sample`` as one line to ``path`` (a JSON lines file), flushed at once."""
    with path.open("a", encoding="utf-8") as out:
        out.write(sample.to_json() + "\n")


def load_samples(path: Path) -> list[Sample]:
    """The samples of ``path`` in order. A last line cut short (the writer was killed mid-line)
    is left out; a bad line anywhere else raises pydantic's ValidationError."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    samples: list[Sample] = []
    for number, line in enumerate(lines, 1):
        try:
            samples.append(Sample.from_json(line))
        except ValidationError:
            if number < len(lines):
                raise
    return samples

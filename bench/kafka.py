"""Broker-side measuring: a consumer group's progress, and reading topics from given offsets.

A worker's throughput is measured from its consumer group's committed offsets, read without
joining the group (the admin API's offset fetch does not speak tansu's protocol version).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from aiokafka import AIOKafkaConsumer, TopicPartition

from hexcast.core.errors import HexcastError

__all__ = ["Ends", "Group", "GroupRun", "assign_at_end", "end_offsets", "partitions"]


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(100):
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        await consumer.force_metadata_update()
        await asyncio.sleep(0.1)
    raise HexcastError(f"topic {topic} does not exist")


async def assign_at_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
    """Read ``tps`` from their end offsets, resolved now, before any new record arrives."""
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = await partitions(consumer, topic)
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


@dataclass(frozen=True, slots=True)
class GroupRun:
    """A group's run over ``target - start`` records: timed from its first output record to its
    last (so process start-up is not counted), or by its commits when that took longer: from
    the first commit past ``start`` to the one that reached ``target``. Output alone can end
    early: a matcher's users reach their daily cap, and the rest of the backlog emits nothing."""

    start: int
    target: int
    first_t: float
    end_t: float
    polled_s: float = 0.0  # the same span seen by polling end offsets every 0.1 s (a cross-check)
    committed_s: float = 0.0  # first commit past ``start`` → ``target`` committed (polled)

    @property
    def span_s(self) -> float:
        return max(self.end_t - self.first_t, self.committed_s, 1e-9)

    @property
    def records_per_s(self) -> float:
        return (self.target - self.start) / self.span_s

    @property
    def polled_per_s(self) -> float:
        return (self.target - self.start) / self.polled_s if self.polled_s > 0 else 0.0


class Ends:
    """The total end offset of a topic (how many records were ever written to it)."""

    def __init__(self, bootstrap: str, topic: str, group: str | None = None) -> None:
        self.topic = topic
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                          enable_auto_commit=False)
        self._tps: list[TopicPartition] = []

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        self._tps = await partitions(self._consumer, self.topic)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._consumer.stop()

    async def total(self) -> int:
        return sum((await self.ends()).values())

    async def ends(self) -> dict[TopicPartition, int]:
        return dict(await self._consumer.end_offsets(self._tps))

    async def span(self, since: dict[TopicPartition, int]) -> tuple[float, float] | None:
        """Broker timestamps (epoch s) of the first and the last record written after ``since``."""
        ends = await self.ends()
        live = [tp for tp in self._tps if ends[tp] > since.get(tp, 0)]
        if not live:
            return None
        self._consumer.assign(live)
        firsts, lasts = [], []
        for tp in live:
            self._consumer.seek(tp, since.get(tp, 0))
            firsts.append((await self._consumer.getone(tp)).timestamp)
            self._consumer.seek(tp, ends[tp] - 1)
            lasts.append((await self._consumer.getone(tp)).timestamp)
        return min(firsts) / 1000, max(lasts) / 1000


class Group(Ends):
    """Committed offsets of consumer group ``group`` on ``topic`` (read without joining it)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        super().__init__(bootstrap, topic, group)

    async def committed(self) -> int:
        found = await asyncio.gather(*(self._consumer.committed(tp) for tp in self._tps))
        return sum(n or 0 for n in found)

    async def start_at_end(self) -> int:
        """Commit the current end offsets, so a new worker of this group skips the backlog."""
        ends = await self._consumer.end_offsets(self._tps)
        self._consumer.assign(self._tps)
        await self._consumer.commit(dict(ends))
        return sum(ends.values())

    async def follow(self, target: int, *, output: Ends, limit_s: float,
                     tick: Callable[[int], None] | None = None) -> GroupRun:
        """Poll until the group has committed ``target`` records; HexcastError after ``limit_s``.
        Timed by the broker timestamps of the first and last output records (polling times
        are the fallback), so process start-up and the commit interval are not counted."""
        started = time.perf_counter()
        start = await self.committed()
        since = await output.ends()
        last_out = sum(since.values())
        first_t: float | None = None
        last_t: float | None = None
        first_epoch = 0.0
        moved: float | None = None  # when the group first committed past ``start``
        while (done := await self.committed()) < target:
            now = time.perf_counter()
            moved = moved or (now if done > start else None)
            if now - started > limit_s:
                raise HexcastError(f"group stalled at {done:,}/{target:,} records after {limit_s:.0f}s")
            if (out := await output.total()) != last_out:
                first_epoch = first_epoch or time.time()
                first_t, last_t, last_out = first_t or now, now, out
            if tick is not None:
                tick(done)
            await asyncio.sleep(0.1)
        if tick is not None:
            tick(done)
        end = time.perf_counter()
        committed_s = end - (moved or started)
        await asyncio.sleep(0.5)  # the last output records' acks
        polled = (last_t or end) - (first_t or started)
        span = await output.span(since)
        if span is not None and span[1] > span[0]:
            # the broker's end offsets can lag a little, so ``since`` may reach back to an
            # earlier run's last output: never start before this run's first output was seen
            first = max(span[0], first_epoch - 0.25) if first_epoch else span[0]
            if span[1] > first:
                return GroupRun(start, target, first, span[1], polled, committed_s)
        return GroupRun(start, target, first_t or started, last_t or end, polled, committed_s)

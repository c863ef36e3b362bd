"""Reads the compacted ``catalog`` and ``profiles`` topics, from the start, into MatchState.

Every matcher process reads every partition of both topics (no consumer group), so any
matcher can match any visit and catalog changes reach all of them within a poll interval.
A record that cannot be applied (any error: a time zone the system does not know, a fence
that cannot be indexed) is logged and skipped; the feed goes on with the next.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from hexcast.core.errors import HexcastError
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from streams.matcher import MatchState
from targeting import CatalogRecord, ProfileRecord

__all__ = ["StateFeed"]

_YIELD_EVERY = 100
"""Records applied between yields to the event loop (a fetch brings up to 5,000; a store
record takes about a millisecond to index)."""

log = get_logger("hexcast.matcher.feed")


class StateFeed:
    def __init__(self, settings: Settings, state: MatchState) -> None:
        self._settings = settings
        self._state = state
        self._catalog = settings.topic("catalog")
        self._profiles = settings.topic("profiles")
        self.ready = asyncio.Event()
        self.applied = 0

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        found: list[TopicPartition] = []
        for topic in (self._catalog, self._profiles):
            for _ in range(100):
                parts = consumer.partitions_for_topic(topic)
                if parts:
                    break
                await consumer.force_metadata_update()
                await asyncio.sleep(0.2)
            else:
                raise HexcastError(f"topic {topic} does not exist")
            found += [TopicPartition(topic, p) for p in sorted(parts)]
        return found

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            enable_auto_commit=False, group_id=None, fetch_max_wait_ms=200,
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            await self._consume(consumer, ends)
        finally:
            await consumer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, messages in batches.items():
                for n, message in enumerate(messages, 1):
                    self._apply(tp.topic, message.key, message.value)
                    if n % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # a catalog burst must not hold up matching
            if not self.ready.is_set() and all(
                await asyncio.gather(*(self._caught_up(consumer, tp, end) for tp, end in ends.items()))
            ):
                log.info("catalog_loaded", records=self.applied)
                self.ready.set()

    @staticmethod
    async def _caught_up(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> bool:
        return bool(await consumer.position(tp) >= end)

    def _apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # a tombstone: only deleted recipients are tombstoned so far
            if topic == self._profiles and key is not None:
                self._state.forget_profile(key.decode())
            return
        try:
            if topic == self._catalog:
                self._state.apply_catalog(CatalogRecord.decode(value))
            else:
                self._state.apply_profile(ProfileRecord.decode(value))
            self.applied += 1
        except Exception as exc:  # noqa: BLE001 - one bad record must not stop the feed
            # Logged, not dead-lettered: both topics are read again from the start by every
            # matcher at every start, and PostgreSQL is their source of truth (catalog sync).
            log.error("bad_state_record", topic=topic, key=key.decode(errors="replace") if key
                      else None, error=f"{type(exc).__name__}: {exc}"[:500])

"""Reading a topic back in a test: every record from its start to its end as of now."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from hexcast.core.settings import Settings

__all__ = ["records_to_end"]


def records_to_end(settings: Settings, topic: str) -> list[bytes]:
    """The values of every record of ``topic`` (its logical name) written so far."""
    async def run() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            name = settings.topic(topic)
            parts = [TopicPartition(name, p) for p in range(settings.topic_partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            found: list[bytes] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [r.value for r in records if r.value is not None]
            return found
        finally:
            await consumer.stop()

    return asyncio.run(run())

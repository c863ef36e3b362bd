"""Publishing to Kafka from non-faust processes (the API, the CLI), with broker acks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from hexcast.core.errors import HexcastError
from hexcast.core.settings import Settings

__all__ = ["Bus", "BusUnavailable"]


class BusUnavailable(HexcastError):
    """The broker did not acknowledge a publish."""


class Bus:
    """One acks=all producer shared by a process; idempotent (a retried send is never written
    twice) when ``kafka_idempotent_producer`` is on (Kafka; the embedded broker refuses it)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.bootstrap_servers,
            acks="all",
            enable_idempotence=self._settings.kafka_idempotent_producer,
            linger_ms=2,
            max_batch_size=1_048_576,
            max_request_size=4_194_304,
            request_timeout_ms=15_000,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise BusUnavailable(f"cannot reach the broker: {exc}") from exc
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, topic: str, key: str, value: bytes | None) -> None:
        """``value`` None is a tombstone: a compacted topic then forgets ``key``."""
        await self.publish_many(topic, [(key, value)])

    async def publish_many(self, topic: str, items: Iterable[tuple[str, bytes | None]]) -> None:
        """Send every item and wait until the broker acknowledged all of them."""
        if self._producer is None:
            raise BusUnavailable("the bus is not started")
        name = self._settings.topic(topic)
        try:
            futures = [
                await self._producer.send(name, value=value, key=key.encode())
                for key, value in items
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise BusUnavailable(f"publish to {name} failed: {exc}") from exc

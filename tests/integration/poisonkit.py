"""Poison for the isolation tests: what a raw Kafka producer can write, and where it ends up.

A lone surrogate written as raw bytes (``ED A0 80``, U+D800 encoded as if it were a character)
is what no JSON parser accepts and no UTF-8 decoder reads; a NUL (``\\u0000``) is valid JSON
that PostgreSQL ``text`` cannot store. Records are built as dicts and encoded here, so the
tests use nothing of the code under test to make them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hexcast.core.settings import Settings

__all__ = ["NUL", "SURROGATE", "encode", "letters", "produce", "read_topic"]

NUL = "\x00"
SURROGATE = "@@lone-surrogate@@"
"""A marker that :func:`encode` replaces with the raw bytes of a lone surrogate."""
_RAW_SURROGATE = b"\xed\xa0\x80"


def encode(value: dict[str, Any]) -> bytes:
    """``value`` as JSON bytes, each :data:`SURROGATE` marker made a raw lone surrogate."""
    return json.dumps(value).encode().replace(SURROGATE.encode(), _RAW_SURROGATE)


def produce(settings: Settings, topic: str, records: list[tuple[str, bytes]]) -> None:
    """Write ``(key, value)`` records to ``topic`` as they are, with a plain producer."""
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(settings.topic(topic), value, key=key.encode())
        finally:
            await producer.stop()

    asyncio.run(run())


def read_topic(
    settings: Settings, topic: str, done: Callable[[list[tuple[bytes | None, bytes]]], bool],
    *, timeout: float = 90.0,
) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` from its start, read until ``done`` says enough (or fail)."""
    async def run() -> list[tuple[bytes | None, bytes]]:
        consumer = AIOKafkaConsumer(settings.topic(topic), bootstrap_servers=settings.bootstrap_servers,
                                    auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        found: list[tuple[bytes | None, bytes]] = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                found += [(m.key, m.value) for ms in batches.values() for m in ms if m.value]
                if done(found):
                    return found
        finally:
            await consumer.stop()
        raise AssertionError(f"{topic}: condition not met within {timeout}s; read {found!r}"[:3000])

    return asyncio.run(run())


def letters(settings: Settings, count: int, *, source: str | None = None) -> list[dict[str, Any]]:
    """The dead letters on ``send.dlq`` (from ``source`` only, if given), once there are at
    least ``count``; each as a dict with its payload parsed."""
    def mine(found: list[tuple[bytes | None, bytes]]) -> list[dict[str, Any]]:
        out = [json.loads(v) for _, v in found]
        return [d for d in out if source is None or d["source_topic"] == source]

    found = read_topic(settings, "send.dlq", lambda f: len(mine(f)) >= count)
    parsed = mine(found)
    for letter in parsed:
        letter["record"] = json.loads(letter["payload"])
    return parsed

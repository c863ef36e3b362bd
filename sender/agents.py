"""Faust agents of the sender: one lane per worker process (``hexcast sender --lane geo``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust
from pydantic import ValidationError

from hexcast.cache import Keys, connect_redis
from hexcast.db import connect_pool
from hexcast.logging import get_logger
from hexcast.settings import Settings
from sender.dispatch import Dispatcher, DispatchFailed
from sender.models import DeadLetter, Lane, SendBatch
from sender.provider import BatchProvider
from sender.ratelimit import TokenBucket
from streams.app import raw_topic

__all__ = ["register_sender"]

log = get_logger("hexcast.sender")


def dead_letter(source: str, key: bytes | None, reason: str, payload: bytes) -> bytes:
    return DeadLetter(
        source_topic=source,
        key=key.decode(errors="replace") if key is not None else None,
        reason=reason[:2000],
        payload=payload.decode(errors="replace"),
        at=datetime.now(UTC),
    ).encode()


def register_sender(app: faust.App, settings: Settings, *, lane: Lane) -> None:
    """Register the agent consuming ``send.<lane>`` on ``app``."""
    source = raw_topic(app, settings, lane.topic)
    dlq = raw_topic(app, settings, "send.dlq")
    keys = Keys(settings.redis_prefix)
    actor = f"sender-{lane.value}"

    async def send_agent(stream: Any) -> None:
        pool = await connect_pool(settings.database_url, max_size=8)
        redis = connect_redis(settings.redis_url)
        provider = BatchProvider(
            name=settings.provider_name, base_url=settings.provider_url,
            token=settings.provider_token, timeout_s=settings.provider_timeout_s,
        )
        bucket = TokenBucket(
            redis, keys("rl", "provider", settings.provider_name),
            rate=settings.provider_rate_per_s, burst=settings.provider_burst,
        )
        dispatcher = Dispatcher(
            pool=pool, provider=provider, bucket=bucket,
            max_attempts=settings.provider_max_attempts, actor=actor,
        )
        log.info("sender_started", lane=lane.value)
        try:
            async for key, value in stream.items():
                reason = await _process(dispatcher, value)
                if reason is not None:
                    log.error("dead_letter", lane=lane.value, reason=reason)
                    await dlq.send(key=key, value=dead_letter(source.get_topic_name(), key,
                                                              reason, value))
        finally:
            await provider.aclose()
            await redis.aclose()
            await pool.close()

    app.agent(source, name=f"send_{lane.value}")(send_agent)


async def _process(dispatcher: Dispatcher, value: bytes) -> str | None:
    """Handle one record; returns a dead-letter reason, or None when all went well."""
    try:
        batch = SendBatch.decode(value)
    except ValidationError as exc:
        return f"invalid send batch: {exc.errors(include_url=False)}"
    try:
        outcome = await dispatcher.handle(batch)
    except DispatchFailed as exc:
        return f"dispatch failed for {len(exc.message_keys)} messages: {exc}"
    except Exception as exc:  # noqa: BLE001 - one bad record must not stop the lane
        log.exception("batch_crashed")
        return f"unexpected {type(exc).__name__}: {exc}"
    log.info("batch_done", lane=batch.lane.value, size=len(batch.items), **outcome.as_dict())
    return None

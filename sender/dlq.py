"""Reading and replaying ``send.dlq`` (one partition) for the ``hexcast dlq`` commands.

Replay requeues the letter's ``failed`` messages and republishes the original record to its
lane: the sender then applies dedupe (accepted, delivered or suppressed keys are not sent
again), opt-out, consent and quiet hours exactly as for a new record.

One bad letter or message costs only itself: a letter that cannot be read is listed as
unreadable and never replayed; a letter's messages are screened one by one (only the valid
ones are replayed; the others stay in the letter); a letter whose replay fails is reported and
the next ones are replayed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from hexcast.core.bus import Bus
from hexcast.core.cache import Keys, connect_redis
from hexcast.core.db import connect_pool
from hexcast.core.errors import HexcastError, InvalidInput
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from hexcast.core.wire import describe
from sender import repo
from sender.metrics import replayed_key
from sender.models import DeadLetter, SendBatch

__all__ = ["UNREADABLE", "read_dead_letters", "replay"]

log = get_logger("hexcast.dlq")
UNREADABLE = "(unreadable)"
"""The ``source_topic`` shown for a record of ``send.dlq`` that is not a dead letter."""


async def read_dead_letters(settings: Settings, *, limit: int) -> list[tuple[int, DeadLetter]]:
    """Up to ``limit`` dead letters from the start of ``send.dlq``, with their offsets."""
    tp = TopicPartition(settings.topic("send.dlq"), 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        found: list[tuple[int, DeadLetter]] = []
        while len(found) < limit and await consumer.position(tp) < end:
            for message in (await consumer.getmany(tp, timeout_ms=500, max_records=500)).get(tp, []):
                if message.value is not None and len(found) < limit:
                    found.append((message.offset, _letter(message)))
        return found
    except TimeoutError as exc:
        raise HexcastError(f"cannot read {tp.topic}: {exc}") from exc
    finally:
        await consumer.stop()


def _letter(message: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    """The letter, or one saying why the record is not a letter (listed, never replayed)."""
    value = message.value or b""
    try:
        return DeadLetter.decode(value)
    except ValidationError as exc:
        return DeadLetter(
            source_topic=UNREADABLE, key=message.key.decode(errors="replace") if message.key else None,
            reason=f"not a dead letter: {describe(exc)}", payload=value.decode(errors="replace"),
            at=datetime.fromtimestamp(message.timestamp / 1000, UTC),
        )


async def replay(settings: Settings, *, offset: int | None) -> int:
    """Replay one letter (or all); returns how many messages were republished."""
    letters = await read_dead_letters(settings, limit=10_000_000 if offset is None else offset + 1)
    chosen = [(o, d) for o, d in letters if offset is None or o == offset]
    if offset is not None and not chosen:
        raise InvalidInput(f"no dead letter at offset {offset}", field="offset")
    pool = await connect_pool(settings.database_url, max_size=2)
    redis = connect_redis(settings.redis_url)
    bus = Bus(settings)
    await bus.start()
    count = 0
    try:
        for at, letter in chosen:
            batch = _replayable(at, letter)
            if batch is None:
                continue
            try:
                async with pool.acquire() as conn:
                    await repo.requeue_failed(conn, keys=[i.message_key for i in batch.items],
                                              actor="dlq-replay")
                await bus.publish(batch.lane.topic, f"replay-{batch.items[0].message_key}",
                                  batch.encode())
                await redis.sadd(replayed_key(Keys(settings.redis_prefix)), str(at))
            except Exception as exc:  # noqa: BLE001 - the other letters are still replayed
                log.error("replay_failed", offset=at, error=f"{type(exc).__name__}: {exc}"[:500])
                continue
            count += len(batch.items)
    finally:
        await bus.stop()
        await redis.aclose()
        await pool.close()
    return count


def _replayable(offset: int, letter: DeadLetter) -> SendBatch | None:
    """The letter's messages that may be replayed (a poison message stays a poison message)."""
    if letter.source_topic == UNREADABLE:
        return None
    screened = SendBatch.screen(letter.payload)
    for _, why in screened.refused:
        log.warning("replay_skipped", offset=offset, reason=why[:500])
    return screened.record

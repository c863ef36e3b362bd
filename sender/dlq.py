"""Reading and replaying ``send.dlq`` (one partition) for the ``hexcast dlq`` commands.

Replay requeues the letter's ``failed`` messages and republishes the original record to its
lane: the sender then applies dedupe (accepted, delivered or suppressed keys are not sent
again), opt-out, consent and quiet hours exactly as for a new record.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from hexcast.bus import Bus
from hexcast.cache import Keys, connect_redis
from hexcast.db import connect_pool
from hexcast.errors import HexcastError, InvalidInput
from hexcast.settings import Settings
from sender import repo
from sender.metrics import replayed_key
from sender.models import DeadLetter, SendBatch

__all__ = ["read_dead_letters", "replay"]


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
                    found.append((message.offset, DeadLetter.decode(message.value)))
        return found
    except TimeoutError as exc:
        raise HexcastError(f"cannot read {tp.topic}: {exc}") from exc
    finally:
        await consumer.stop()


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
            try:
                batch = SendBatch.decode(letter.payload)
            except ValidationError:
                continue  # a poison record stays a poison record
            async with pool.acquire() as conn:
                await repo.requeue_failed(conn, keys=[i.message_key for i in batch.items],
                                          actor="dlq-replay")
            await bus.publish(batch.lane.topic, f"replay-{batch.items[0].message_key}",
                              batch.encode())
            await redis.sadd(replayed_key(Keys(settings.redis_prefix)), str(at))
            count += len(batch.items)
    finally:
        await bus.stop()
        await redis.aclose()
        await pool.close()
    return count

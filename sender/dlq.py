"""Reading and replaying ``send.dlq`` (one partition) for the ``hexcast dlq`` commands.

Replay requeues the letter's ``failed`` messages and republishes the original record to its
lane: the sender then applies dedupe (accepted, delivered or suppressed keys are not sent
again), opt-out, consent and quiet hours exactly as for a new record.

One bad letter or message costs only itself: a letter that cannot be read is listed as
unreadable and never replayed; a letter's messages are screened one by one (only the valid
ones are replayed; the others stay in the letter); a letter whose replay fails is reported and
the next ones are replayed. Every letter requeued is in the operator audit log
(``dlq.requeue``: who, why, how many messages), written with its messages' requeue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from hexcast.core import operator_log
from hexcast.core.bus import Bus
from hexcast.core.cache import Keys, connect_redis
from hexcast.core.db import connect_pool
from hexcast.core.errors import HexcastError, InvalidInput
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from hexcast.core.wire import describe
from sender import repo
from sender.gauges import replayed_key
from sender.models import DeadLetter, Lane, SendBatch

__all__ = ["UNREADABLE", "Requeued", "Selection", "choose", "letter_lane", "read_dead_letters",
           "replay", "replayed", "requeue"]

log = get_logger("hexcast.dlq")
UNREADABLE = "(unreadable)"
"""The ``source_topic`` shown for a record of ``send.dlq`` that is not a dead letter."""
_ALL = 10_000_000


async def read_dead_letters(
    settings: Settings, *, limit: int, after: int | None = None, until: int | None = None,
) -> list[tuple[int, DeadLetter]]:
    """Up to ``limit`` dead letters of ``send.dlq`` with their offsets, oldest first: from the
    start (or the offset after ``after``) up to offset ``until`` (the end when None)."""
    tp = TopicPartition(settings.topic("send.dlq"), 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        if after is None or after < 0:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, after + 1)
        end = (await consumer.end_offsets([tp]))[tp]
        end = end if until is None else min(end, until + 1)
        found: list[tuple[int, DeadLetter]] = []
        while len(found) < limit and await consumer.position(tp) < end:
            for message in (await consumer.getmany(tp, timeout_ms=500, max_records=500)).get(tp, []):
                if message.value is not None and len(found) < limit and message.offset < end:
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


@dataclass(frozen=True, slots=True)
class Selection:
    """Which letters to requeue: ``offsets`` (even letters replayed before), else every letter
    not replayed yet up to offset ``up_to`` (all when None) of ``lane`` (any when None)."""

    offsets: tuple[int, ...] = ()
    up_to: int | None = None
    lane: Lane | None = None


@dataclass(frozen=True, slots=True)
class Requeued:
    """What became of one letter: ``messages`` republished to ``lane`` (``requeued`` of them
    were ``failed`` and are ``queued`` again), or why none were (``skipped``)."""

    offset: int
    lane: Lane | None
    messages: int
    requeued: int
    skipped: str | None = None


async def replayed(redis: aioredis.Redis, keys: Keys, offsets: Sequence[int]) -> list[bool]:
    """Whether each letter was replayed already (the set the DLQ depth is counted with)."""
    if not offsets:
        return []
    found = await redis.smismember(replayed_key(keys), [str(o) for o in offsets])
    return [bool(f) for f in found]


async def choose(
    settings: Settings, redis: aioredis.Redis, keys: Keys, selection: Selection,
) -> list[tuple[int, DeadLetter]]:
    """The letters ``selection`` names; an offset that is no letter is an :class:`InvalidInput`."""
    if selection.offsets:
        wanted = set(selection.offsets)
        letters = await read_dead_letters(settings, limit=_ALL, after=min(wanted) - 1,
                                          until=max(wanted))
        chosen = [(o, d) for o, d in letters if o in wanted]
        missing = sorted(wanted - {o for o, _ in chosen})
        if missing:
            raise InvalidInput(f"no dead letter at offset {missing[0]}", field="offsets")
        return chosen
    letters = await read_dead_letters(settings, limit=_ALL, until=selection.up_to)
    done = await replayed(redis, keys, [o for o, _ in letters])
    return [(o, d) for (o, d), was in zip(letters, done, strict=True) if not was
            and (selection.lane is None or letter_lane(d) is selection.lane)]


def letter_lane(letter: DeadLetter) -> Lane | None:
    """The lane a letter would be requeued to (None: nothing of it can be)."""
    batch = _replayable(None, letter)
    return batch.lane if batch is not None else None


async def requeue(
    pool: asyncpg.Pool, redis: aioredis.Redis, bus: Bus, keys: Keys, *,
    letters: Sequence[tuple[int, DeadLetter]], actor: str, reason: str,
) -> list[Requeued]:
    """Requeue each letter: its failed messages ``queued`` again, audited (``dlq.requeue``) in
    the same transaction, then its record republished to its lane and the letter counted as
    replayed. A letter that fails is reported and the next ones are requeued."""
    return [await _requeue_one(pool, redis, bus, keys, offset, letter, actor=actor, reason=reason)
            for offset, letter in letters]


async def _requeue_one(
    pool: asyncpg.Pool, redis: aioredis.Redis, bus: Bus, keys: Keys, offset: int,
    letter: DeadLetter, *, actor: str, reason: str,
) -> Requeued:
    batch = _replayable(offset, letter)
    if batch is None:
        return Requeued(offset, None, 0, 0, skipped=f"nothing to send again: {letter.reason[:200]}")
    message_keys = [i.message_key for i in batch.items]
    try:
        async with pool.acquire() as conn, conn.transaction():
            moved = await repo.requeue_failed(conn, keys=message_keys, actor=actor)
            await operator_log.record(
                conn, actor=actor, action="dlq.requeue", target=f"dlq:{offset}", reason=reason,
                detail={"lane": batch.lane.value, "messages": len(message_keys),
                        "requeued": len(moved), "letter": letter.reason[:200]})
        await bus.publish(batch.lane.topic, f"replay-{message_keys[0]}", batch.encode())
        await redis.sadd(replayed_key(keys), str(offset))
    except Exception as exc:  # noqa: BLE001 - the other letters are still replayed
        why = f"{type(exc).__name__}: {exc}"[:500]
        log.error("replay_failed", offset=offset, error=why)
        return Requeued(offset, batch.lane, 0, 0, skipped=f"failed: {why}")
    return Requeued(offset, batch.lane, len(message_keys), len(moved))


async def replay(settings: Settings, *, selection: Selection, actor: str, reason: str
                 ) -> list[Requeued]:
    """:func:`requeue` the letters ``selection`` names, with connections of its own (the CLI)."""
    redis = connect_redis(settings.redis_url)
    keys = Keys(settings.redis_prefix)
    try:
        letters = await choose(settings, redis, keys, selection)
        pool = await connect_pool(settings.database_url, max_size=2)
        bus = Bus(settings)
        await bus.start()
        try:
            return await requeue(pool, redis, bus, keys, letters=letters, actor=actor,
                                 reason=reason)
        finally:
            await bus.stop()
            await pool.close()
    finally:
        await redis.aclose()


def _replayable(offset: int | None, letter: DeadLetter) -> SendBatch | None:
    """The letter's messages that may be replayed (a poison message stays a poison message)."""
    if letter.source_topic == UNREADABLE:
        return None
    screened = SendBatch.screen(letter.payload)
    if offset is not None:
        for _, why in screened.refused:
            log.warning("replay_skipped", offset=offset, reason=why[:500])
    return screened.record

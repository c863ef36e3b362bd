"""Dead letters as the console shows them: the latest letters of ``send.dlq`` (newest first, a
page at a time), grouped by the lane topic a requeue sends them back to, each with its tenants
and whether it was requeued; and the letters an operator's selection names. Read and chosen
with ``sender.dlq``, as the admin API (``sender.dlq_api``) and ``hexcast dlq`` do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from hexcast.core.cache import Keys
from hexcast.core.deadletter import DeadLetter
from hexcast.core.settings import Settings
from sender.dlq import UNREADABLE, Selection, choose, read_dead_letters, replayed
from sender.models import Lane, SendBatch

__all__ = ["PAGE", "DlqView", "Group", "LetterView", "chosen", "dlq_view", "tenants_of"]

PAGE = 100
"""Letters shown a page."""


@dataclass(frozen=True, slots=True)
class LetterView:
    offset: int
    letter: DeadLetter
    lane: Lane | None  # where a requeue sends it; None: nothing of it can be
    tenants: tuple[int, ...]
    messages: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class Group:
    """The letters a requeue sends back to one lane's topic (``lane`` None: to none)."""

    lane: Lane | None
    letters: list[LetterView]

    @property
    def topic(self) -> str:
        return self.lane.topic if self.lane is not None else "(cannot be requeued)"

    @property
    def waiting(self) -> int:
        return sum(1 for v in self.letters if not v.replayed and v.lane is not None)


@dataclass(frozen=True, slots=True)
class DlqView:
    groups: list[Group]
    shown: int
    older: int | None  # ``before`` of the next older page; None: this page starts the topic


def _batch(letter: DeadLetter) -> SendBatch | None:
    """The messages of the letter a requeue sends again (as ``sender.dlq`` screens them)."""
    return None if letter.source_topic == UNREADABLE else SendBatch.screen(letter.payload).record


def _tenants(batch: SendBatch | None) -> tuple[int, ...]:
    return tuple(sorted({i.tenant_id for i in batch.items})) if batch is not None else ()


def tenants_of(letter: DeadLetter) -> tuple[int, ...]:
    """The tenants whose messages the letter holds (none for a letter that holds no batch)."""
    return _tenants(_batch(letter))


def _view(offset: int, letter: DeadLetter, was: bool) -> LetterView:
    batch = _batch(letter)  # its lane is letter_lane(letter), without reading the payload again
    return LetterView(offset, letter, batch.lane if batch is not None else None, _tenants(batch),
                      len(batch.items) if batch is not None else 0, was)


async def _end(settings: Settings) -> int:
    """The offset the next letter of ``send.dlq`` gets."""
    tp = TopicPartition(settings.topic("send.dlq"), 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        end: int = (await consumer.end_offsets([tp]))[tp]
        return end
    finally:
        await consumer.stop()


async def dlq_view(settings: Settings, redis: aioredis.Redis, *, tenant_id: int | None,
                   before: int | None) -> DlqView:
    """The :data:`PAGE` letters before offset ``before`` (the latest when None), newest first,
    those holding messages of ``tenant_id`` only when given."""
    end = await _end(settings) if before is None else before
    start = max(end - PAGE, 0)
    letters = await read_dead_letters(settings, limit=PAGE, after=start - 1, until=end - 1)
    done = await replayed(redis, Keys(settings.redis_prefix), [o for o, _ in letters])
    views = [v for v in (_view(o, d, was) for (o, d), was in zip(letters, done, strict=True))
             if tenant_id is None or tenant_id in v.tenants][::-1]
    lanes: list[Lane | None] = [*Lane, None]
    groups = [Group(lane, [v for v in views if v.lane is lane]) for lane in lanes]
    return DlqView([g for g in groups if g.letters], len(views), start if start > 0 else None)


async def chosen(settings: Settings, redis: aioredis.Redis, *, offsets: Sequence[int],
                 lane: Lane | None, tenant_id: int | None) -> list[tuple[int, DeadLetter]]:
    """The letters at ``offsets``, else those of ``lane`` not requeued yet (those holding
    messages of ``tenant_id`` only, when given); an offset that is no letter is InvalidInput."""
    keys = Keys(settings.redis_prefix)
    if offsets:
        return await choose(settings, redis, keys, Selection(offsets=tuple(offsets)))
    letters = await choose(settings, redis, keys, Selection(lane=lane))
    return [(o, d) for o, d in letters if tenant_id is None or tenant_id in tenants_of(d)]

"""Operator routes for the sender's dead letters (``send.dlq``, ``sender.dlq``): list them with
why they are there, and requeue them: failed messages are queued again and the record goes back
to its lane, where consent, opt-out, quiet hours and dedupe are checked again before anything
is sent. Each letter requeued is in the operator audit log (``dlq.requeue``)."""

from __future__ import annotations

from typing import Annotated, Self

import redis.asyncio as aioredis
from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from hexcast.core.cache import Keys
from hexcast.core.ids import BIGINT_MAX
from hexcast.core.operator_log import Audited
from hexcast.core.web import BusDep, Limit, PoolDep, RequireOperator, SettingsDep
from sender.dlq import Requeued, Selection, choose, letter_lane, read_dead_letters, replayed, requeue
from sender.models import Lane

__all__ = ["DeadLetterPublic", "LetterRequeuedPublic", "RequeueIn", "RequeuedPublic", "router"]

router = APIRouter(prefix="/v1/admin/dlq", tags=["operators"], dependencies=[RequireOperator])

Offset = Annotated[int, Field(ge=0, le=BIGINT_MAX)]


class DeadLetterPublic(BaseModel):
    offset: int
    source_topic: str = Field(description="Where the record came from")
    key: str | None
    reason: str = Field(description="Why it could not be processed")
    at: AwareDatetime
    lane: Lane | None = Field(description="The lane a requeue sends it to; none: it cannot be")
    replayed: bool = Field(description="Requeued already (its messages went on)")


class RequeueIn(Audited):
    """Which letters: ``offsets``, else every letter not requeued yet up to ``up_to`` and/or of
    ``lane``."""

    offsets: Annotated[list[Offset] | None, Field(min_length=1, max_length=1000)] = None
    up_to: Annotated[Offset | None, Field(description="Letters at or before this offset")] = None
    lane: Annotated[Lane | None, Field(description="Only letters of this lane")] = None

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        if self.offsets is not None and (self.up_to is not None or self.lane is not None):
            raise ValueError("either offsets, or up_to and/or lane")
        if self.offsets is None and self.up_to is None and self.lane is None:
            raise ValueError("say which letters: offsets, up_to or lane")
        return self


class LetterRequeuedPublic(BaseModel):
    offset: int
    lane: Lane | None
    messages: int = Field(description="Messages sent back to the lane")
    requeued: int = Field(description="Of those, failed ones queued again")
    skipped: str | None = Field(description="Why nothing was sent back, if so")


class RequeuedPublic(BaseModel):
    messages: int
    letters: list[LetterRequeuedPublic]


def _redis(request: Request) -> aioredis.Redis:
    client: aioredis.Redis = request.app.state.redis
    return client


@router.get("", response_model=list[DeadLetterPublic])
async def list_dead_letters(
    request: Request, settings: SettingsDep, limit: Limit = 100,
    after: Annotated[int | None, Query(ge=0, le=BIGINT_MAX - 1,
                                       description="Letters after this offset")] = None,
) -> list[DeadLetterPublic]:
    """Dead letters, oldest first, with why each is there and whether it was requeued."""
    letters = await read_dead_letters(settings, limit=limit, after=after)
    done = await replayed(_redis(request), Keys(settings.redis_prefix), [o for o, _ in letters])
    return [DeadLetterPublic(offset=o, source_topic=d.source_topic, key=d.key, reason=d.reason,
                             at=d.at, lane=letter_lane(d), replayed=was)
            for (o, d), was in zip(letters, done, strict=True)]


@router.post("/requeue", response_model=RequeuedPublic)
async def requeue_dead_letters(
    body: RequeueIn, request: Request, settings: SettingsDep, pool: PoolDep, bus: BusDep,
) -> RequeuedPublic:
    """Requeue dead letters (an offset that is no letter is a 422 and nothing is done): each
    letter's failed messages are queued again and its record goes back to its lane; audited
    per letter with the actor and the reason."""
    redis, keys = _redis(request), Keys(settings.redis_prefix)
    selection = Selection(offsets=tuple(body.offsets or ()), up_to=body.up_to, lane=body.lane)
    letters = await choose(settings, redis, keys, selection)
    done = await requeue(pool, redis, bus, keys, letters=letters, actor=body.actor, reason=body.reason)
    return RequeuedPublic(messages=sum(r.messages for r in done), letters=[_public(r) for r in done])


def _public(done: Requeued) -> LetterRequeuedPublic:
    return LetterRequeuedPublic(offset=done.offset, lane=done.lane, messages=done.messages,
                                requeued=done.requeued, skipped=done.skipped)

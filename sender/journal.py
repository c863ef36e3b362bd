"""The sender's message log side: state moves in PostgreSQL and their delivery events.

Every move is a conditional statement (see ``sender.repo``); the rows that really moved are
published as :class:`~sender.models.DeliveryEvent` on the ``delivery`` topic. Redis and
PostgreSQL outages are retried with backoff (fail closed): sending pauses, nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
from pydantic import TypeAdapter

from hexcast.core.cache import REDIS_OUTAGES
from hexcast.core.db import PG_OUTAGES
from hexcast.core.logging import get_logger
from hexcast.core.retry import until_available
from sender import repo
from sender.models import DeliveryEvent, MessageState

__all__ = ["EventSink", "Journal", "Outcome", "with_state"]

log = get_logger("hexcast.sender")
T = TypeVar("T")
EventSink = Callable[[list[DeliveryEvent]], Awaitable[None]]

_INFRA_ERRORS = PG_OUTAGES + REDIS_OUTAGES
Q, S = MessageState.QUEUED, MessageState.SENDING
_EVENTS = TypeAdapter(list[DeliveryEvent])


class Outcome:
    """Counts of what one batch did, for logs and the live view; ``dead`` = keys for the DLQ."""

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.expired = 0
        self.failed = 0
        self.unknown = 0
        self.suppressed = 0
        self.deferred = 0
        self.rate_limited = 0
        self.dead: dict[str, str] = {}  # message key → why it failed for good

    def kill(self, rows: Sequence[repo.MessageRow], why: str) -> None:
        """``rows`` failed for good because of ``why``: they belong in the dead letters."""
        self.dead.update((r.message_key, why) for r in rows)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}

    @classmethod
    def merged(cls, outcomes: Sequence[Outcome]) -> Outcome:
        """One outcome adding up several (the slices of one batch)."""
        total = cls()
        for one in outcomes:
            for name, value in one.as_dict().items():
                setattr(total, name, getattr(total, name) + value)
            total.dead.update(one.dead)
        return total


class Journal:
    """PostgreSQL state moves of one sender process, with their events."""

    def __init__(self, *, pool: asyncpg.Pool, actor: str, publish: EventSink) -> None:
        self._pool = pool
        self._actor = actor
        self._publish = publish

    async def _infra(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` until Redis/PostgreSQL answer: sending pauses, nothing is dropped."""
        return await until_available(fn, errors=_INFRA_ERRORS, log=log, event="sending_paused")

    async def _move(
        self, rows: Sequence[repo.MessageRow], to: MessageState, frm: Sequence[MessageState],
        reason: str, *, count_attempt: bool = False, provider: str | None = None,
    ) -> list[repo.MessageRow]:
        """Conditional state move; returns the rows moved and publishes their events."""
        if not rows:
            return []

        async def run() -> set[int]:
            async with self._pool.acquire() as conn:
                return await repo.transition(
                    conn, ids=[r.id for r in rows], to=to, from_states=frm, reason=reason,
                    actor=self._actor, count_attempt=count_attempt, provider=provider,
                )

        moved_ids = await self._infra(run)
        moved = [r for r in rows if r.id in moved_ids]
        if to not in (Q, S):
            await self._emit(moved, to, reason)
        return moved

    async def _accept(
        self, pairs: Sequence[tuple[repo.MessageRow, str]], segments: dict[int, int] | None = None
    ) -> int:
        if not pairs:
            return 0

        async def run() -> set[int]:
            async with self._pool.acquire() as conn:
                return await repo.mark_accepted(
                    conn, accepted=[(r.id, pmid) for r, pmid in pairs], actor=self._actor,
                    segments=[(segments or {}).get(r.id) for r, _ in pairs],
                )

        moved_ids = await self._infra(run)
        moved = [r for r, _ in pairs if r.id in moved_ids]
        await self._emit(moved, MessageState.ACCEPTED, "provider accepted")
        return len(moved)

    async def _emit(
        self, rows: Sequence[repo.MessageRow], state: MessageState, reason: str,
        *, reasons: dict[int, str] | None = None,
    ) -> None:
        if not rows:
            return
        at, why = datetime.now(UTC), reasons or {}
        # One validation call for the list: a model built per event was ~8 % of a bulk
        # sender's CPU (pydantic's per-call overhead, not the checks).
        await self._publish(_EVENTS.validate_python([
            {"message_key": r.message_key, "tenant_id": r.tenant_id, "lane": r.lane,
             "state": state, "reason": why.get(r.id, reason), "promotion_id": r.promotion_id,
             "campaign_run_id": r.campaign_run_id, "user_id": r.user_id, "phone": r.phone,
             "at": at}
            for r in rows
        ]))

    async def _suppress(self, rows: list[repo.MessageRow], outcome: Outcome) -> set[int]:
        """Opted-out numbers and marketing without consent: ``suppressed`` with the reason."""
        if not rows:
            return set()

        async def run() -> dict[int, str]:
            async with self._pool.acquire() as conn:
                return await repo.suppress_blocked(conn, ids=[r.id for r in rows],
                                                   actor=self._actor)

        why = await self._infra(run)
        moved = [r for r in rows if r.id in why]
        outcome.suppressed += len(moved)
        await self._emit(moved, MessageState.SUPPRESSED, "blocked", reasons=why)
        return set(why)

    async def _defer(
        self, held: list[tuple[repo.MessageRow, datetime]], *, reason: str = "quiet hours until "
    ) -> int:
        """``queued → deferred`` until each row's next allowed instant."""
        if not held:
            return 0

        async def run() -> set[int]:
            async with self._pool.acquire() as conn:
                return await repo.defer(conn, deferrals=[(r.id, t) for r, t in held],
                                        reason=reason, actor=self._actor)

        moved_ids = await self._infra(run)
        moved = [r for r, _ in held if r.id in moved_ids]
        await self._emit(moved, MessageState.DEFERRED, reason.removesuffix(" until "))
        return len(moved)

    async def _claim(self, part: list[repo.MessageRow], name: str) -> list[repo.MessageRow]:
        async def run() -> set[int]:
            async with self._pool.acquire() as conn:
                return await repo.claim_for_sending(
                    conn, ids=[r.id for r in part], provider=name, actor=self._actor,
                    reason=f"calling {name}",
                )

        claimed = await self._infra(run)
        return [r for r in part if r.id in claimed]  # still as read: copies cost per message


def with_state(
    row: repo.MessageRow, state: MessageState, provider: str | None = None
) -> repo.MessageRow:
    return replace(row, state=state, provider=provider or row.provider)



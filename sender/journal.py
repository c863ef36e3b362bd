"""The message log as the dispatcher sees it: the :class:`Store` protocol and :class:`Journal`,
its PostgreSQL implementation.

Every move is a conditional statement (see ``sender.repo``); the rows that really moved are
published as :class:`~sender.models.DeliveryEvent` on the ``delivery`` topic. PostgreSQL (and,
through :func:`until_up`, Redis) outages are retried with backoff (fail closed): sending pauses,
nothing is dropped. Tests of the dispatcher put an in-memory store in its place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import asyncpg
from pydantic import TypeAdapter

from hexcast.core.cache import REDIS_OUTAGES
from hexcast.core.db import PG_OUTAGES, Conn
from hexcast.core.logging import get_logger
from hexcast.core.retry import until_available
from sender import (
    consent,
    dlr,
    links_repo,
    metrics,
    receipts_repo,
    recipients_repo,
    repo,
    reservations_repo,
    settle,
)
from sender.models import DeliveryEvent, Lane, MessageState, SendRequest
from sender.text import segment_count

__all__ = ["EventSink", "Journal", "Link", "Store", "until_up", "with_state"]

log = get_logger("hexcast.sender")
T = TypeVar("T")
EventSink = Callable[[list[DeliveryEvent]], Awaitable[None]]
Link = tuple[str, int, str, str]  # code, tenant, message key, url
Row = repo.MessageRow

_INFRA_ERRORS = PG_OUTAGES + REDIS_OUTAGES
Q, S = MessageState.QUEUED, MessageState.SENDING
_EVENTS = TypeAdapter(list[DeliveryEvent])


async def until_up(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` until Redis/PostgreSQL answer: sending pauses, nothing is dropped."""
    return await until_available(fn, errors=_INFRA_ERRORS, log=log, event="sending_paused")


class Store(Protocol):
    """What sending needs of the message log. Each move is conditional on the row's state and
    returns the rows (ids) that really moved; moves to a state other than queued/sending are
    published as delivery events."""

    async def enqueue(self, lane: Lane, items: list[SendRequest]) -> tuple[list[Row], repo.Screened]:
        ...

    async def stale(self, lane: Lane, *, older_than_s: float, after_id: int) -> repo.PendingPage: ...

    async def profile_zones(self, recipients: list[tuple[int, str]]) -> dict[tuple[int, str], str]:
        ...

    async def recipient_ids(self, recipients: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
        ...

    async def held_back(self, counts: dict[int, int]) -> None:
        """Geo offers held back by cap reservations, per reserving run (for its stats)."""
        ...

    async def move(self, rows: Sequence[Row], to: MessageState, frm: Sequence[MessageState],
                   reason: str, *, attempts: int = 0) -> list[Row]: ...

    async def claim(self, rows: list[Row], provider: str) -> list[Row]: ...

    async def accept(self, pairs: Sequence[tuple[Row, str]],
                     segments: dict[int, int] | None = None,
                     part_ids: dict[int, tuple[str, ...]] | None = None) -> int: ...

    async def suppress(self, rows: list[Row]) -> dict[int, str]: ...

    async def defer(self, held: list[tuple[Row, datetime]], *, reason: str) -> int: ...

    async def save_links(self, links: list[Link]) -> None: ...

    async def carrier_opt_out(self, rows: list[Row]) -> None:
        """The rows' recipients unsubscribed at the carrier: opted out for their tenants."""
        ...


class Journal:
    """The PostgreSQL message log of one sender process (``actor`` in the audit), with events."""

    def __init__(self, *, pool: asyncpg.Pool, actor: str, publish: EventSink) -> None:
        self._pool = pool
        self._actor = actor
        self._publish = publish

    async def _run(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        async def once() -> T:
            async with self._pool.acquire() as conn:
                return await fn(conn)

        return await until_up(once)

    async def enqueue(self, lane: Lane, items: list[SendRequest]) -> tuple[list[Row], repo.Screened]:
        rows, screened = await self._run(
            lambda c: repo.enqueue(c, lane=lane, items=items, actor=self._actor))
        metrics.count_moves(Q, ((r.tenant_id, lane, None) for r in rows if r.id in screened.ids))
        return rows, screened

    async def stale(self, lane: Lane, *, older_than_s: float, after_id: int) -> repo.PendingPage:
        return await self._run(lambda c: repo.stale_rows(
            c, lane=lane, older_than_s=older_than_s, after_id=after_id, limit=1000))

    async def profile_zones(self, recipients: list[tuple[int, str]]) -> dict[tuple[int, str], str]:
        return await self._run(lambda c: recipients_repo.profile_zones(c, recipients=recipients))

    async def recipient_ids(self, recipients: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
        return await self._run(lambda c: recipients_repo.recipient_ids(c, recipients=recipients))

    async def held_back(self, counts: dict[int, int]) -> None:
        await self._run(lambda c: reservations_repo.add_held_back(c, counts=counts))

    async def move(self, rows: Sequence[Row], to: MessageState, frm: Sequence[MessageState],
                   reason: str, *, attempts: int = 0) -> list[Row]:
        if not rows:
            return []
        moved = _counted(rows, to, await self._run(lambda c: repo.transition(
            c, ids=[r.id for r in rows], to=to, from_states=frm, reason=reason, actor=self._actor,
            attempts=attempts)))
        if to not in (Q, S):
            await self._emit(moved, to, reason)
        return moved

    async def claim(self, rows: list[Row], provider: str) -> list[Row]:
        claimed = await self._run(lambda c: repo.claim_for_sending(
            c, ids=[r.id for r in rows], provider=provider, actor=self._actor,
            reason=f"calling {provider}"))
        mine = [r for r in rows if r.id in claimed]  # still as read: copies cost per message
        metrics.count_moves(S, ((r.tenant_id, r.lane, provider) for r in mine))
        return mine

    async def accept(self, pairs: Sequence[tuple[Row, str]],
                     segments: dict[int, int] | None = None,
                     part_ids: dict[int, tuple[str, ...]] | None = None) -> int:
        if not pairs:
            return 0
        moved_ids = await self._run(lambda c: repo.accept_messages(
            c, accepted=[(r.id, pmid) for r, pmid in pairs], actor=self._actor,
            segments=[(segments or {}).get(r.id) for r, _ in pairs], part_ids=part_ids))
        moved = _counted([r for r, _ in pairs], MessageState.ACCEPTED, moved_ids)
        metrics.count_segments(((r.tenant_id, r.lane, moved_ids[r.id]),
                                (segments or {}).get(r.id) or segment_count(r.body)) for r in moved)
        await self._emit(moved, MessageState.ACCEPTED, "provider accepted")
        await self._settle_early_receipts(
            [pmid for r, pmid in pairs if r.id in moved_ids],
            [r.client_ref for r in moved if r.id in (part_ids or {})])
        return len(moved)

    async def _settle_early_receipts(self, provider_ids: list[str], multipart: list[str]) -> None:
        """Receipts that came before their acceptance was committed (they name the message by
        the provider's id, or a part by its own id): placed and applied now
        (``sender.settle``). ``multipart``: the keys of the messages with part ids."""
        if not provider_ids:
            return

        async def apply(conn: Conn) -> list[asyncpg.Record]:
            placed = await receipts_repo.rekey(conn, message_keys=multipart)
            return await settle.settle(conn, refs=[*provider_ids, *(k for _, k in placed)],
                                       actor=self._actor)

        changed = await self._run(apply)
        if changed:
            await self._publish(dlr.receipt_events(changed))

    async def suppress(self, rows: list[Row]) -> dict[int, str]:
        """Opted-out numbers and marketing without consent: ``suppressed`` with the reason."""
        if not rows:
            return {}
        found = await self._run(lambda c: consent.suppress_blocked(
            c, ids=[r.id for r in rows], actor=self._actor))
        moved = _counted(rows, MessageState.SUPPRESSED, {i: p for i, (_, p) in found.items()})
        why = {i: w for i, (w, _) in found.items()}
        await self._emit(moved, MessageState.SUPPRESSED, "blocked", reasons=why)
        return why

    async def defer(self, held: list[tuple[Row, datetime]], *, reason: str) -> int:
        """``queued → deferred`` until each row's next allowed instant (``reason`` + instant)."""
        if not held:
            return 0
        moved_ids = await self._run(lambda c: repo.defer(
            c, deferrals=[(r.id, t) for r, t in held], reason=reason, actor=self._actor))
        moved = _counted([r for r, _ in held], MessageState.DEFERRED, moved_ids)
        metrics.count_deferred(reason, ((r.tenant_id, r.lane, None) for r in moved))
        await self._emit(moved, MessageState.DEFERRED, reason.removesuffix(" until "))
        return len(moved)

    async def save_links(self, links: list[Link]) -> None:
        await self._run(lambda c: links_repo.save_links(c, links=links))

    async def carrier_opt_out(self, rows: list[Row]) -> None:
        recipients = [(r.tenant_id, r.phone) for r in rows]
        metrics.count_optouts(await self._run(
            lambda c: receipts_repo.record_carrier_opt_outs(c, recipients=recipients)))
        log.info("carrier_opt_outs", count=len(rows))

    async def _emit(self, rows: Sequence[Row], state: MessageState, reason: str,
                    *, reasons: dict[int, str] | None = None) -> None:
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


def _counted(rows: Sequence[Row], state: MessageState, moved: Mapping[int, str | None]
             ) -> list[Row]:
    """The ``rows`` a statement moved into ``state`` (``moved``: id → the provider each is
    with), counted in ``hexcast_messages_total``."""
    kept = [r for r in rows if r.id in moved]
    metrics.count_moves(state, ((r.tenant_id, r.lane, moved[r.id]) for r in kept))
    return kept


def with_state(row: Row, state: MessageState, provider: str | None = None) -> Row:
    return replace(row, state=state, provider=provider or row.provider)

"""The sender's work on one send batch: dedupe, expire, rate-limit, call, record.

Ordering guarantees (see docs/ARCHITECTURE.md):
- a row moves ``queued → sending`` in PostgreSQL (committed) before the provider call, with
  the message key as the provider's client reference;
- a row found in ``sending`` (a crash or redelivery mid-call) is reconciled by provider
  lookup, and resent only when the provider never saw it;
- Redis or PostgreSQL outages pause the work (fail closed) instead of dropping it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import asyncpg
import redis.exceptions

from hexcast.errors import HexcastError, ProviderError, ProviderRateLimited, ProviderUnavailable
from hexcast.logging import get_logger
from sender import repo
from sender.models import MessageState, SendBatch
from sender.provider import BatchProvider, Outgoing, ProviderResult
from sender.ratelimit import TokenBucket

__all__ = ["DispatchFailed", "Dispatcher", "Outcome"]

log = get_logger("hexcast.sender")
T = TypeVar("T")

_INFRA_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
Q, S = MessageState.QUEUED, MessageState.SENDING


class DispatchFailed(HexcastError):
    """Some messages of a batch could not be sent; they belong in the dead-letter topic."""

    def __init__(self, message: str, *, message_keys: list[str]) -> None:
        super().__init__(message)
        self.message_keys = message_keys


class Outcome:
    """Counts of what one batch did, for logs and the live view."""

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.expired = 0
        self.failed = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class Dispatcher:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        provider: BatchProvider,
        bucket: TokenBucket,
        max_attempts: int,
        actor: str,
    ) -> None:
        self._pool = pool
        self._provider = provider
        self._bucket = bucket
        self._max_attempts = max_attempts
        self._actor = actor

    async def _infra(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` until Redis/PostgreSQL answer: sending pauses, nothing is dropped."""
        delay = 0.2
        while True:
            try:
                return await fn()
            except _INFRA_ERRORS as exc:
                log.warning("sending_paused", error=f"{type(exc).__name__}: {exc}", retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _move(
        self, ids: Sequence[int], to: MessageState, frm: Sequence[MessageState], reason: str,
        *, count_attempt: bool = False,
    ) -> set[int]:
        async def run() -> set[int]:
            async with self._pool.acquire() as conn:
                return await repo.transition(
                    conn, ids=ids, to=to, from_states=frm, reason=reason, actor=self._actor,
                    count_attempt=count_attempt, provider=self._provider.name,
                )

        return await self._infra(run)

    async def _accept(self, accepted: Sequence[tuple[int, str]]) -> set[int]:
        async def run() -> set[int]:
            async with self._pool.acquire() as conn:
                return await repo.mark_accepted(conn, accepted=accepted, actor=self._actor)

        return await self._infra(run)

    async def handle(self, batch: SendBatch) -> Outcome:
        outcome = Outcome()

        async def enqueue() -> list[repo.MessageRow]:
            async with self._pool.acquire() as conn:
                return await repo.enqueue(
                    conn, lane=batch.lane, items=batch.items, actor=self._actor
                )

        rows = await self._infra(enqueue)
        outcome.duplicates = sum(1 for r in rows if r.state not in (Q, S))
        pending = await self._reconcile([r for r in rows if r.state is S], outcome)
        pending += [r for r in rows if r.state is Q]
        now = datetime.now(UTC)
        stale = [r.id for r in pending if r.expires_at is not None and r.expires_at <= now]
        outcome.expired = len(await self._move(stale, MessageState.EXPIRED, [Q], "ttl passed"))
        pending = [r for r in pending if r.id not in set(stale)]
        for start in range(0, len(pending), self._provider.max_batch):
            await self._send_chunk(pending[start : start + self._provider.max_batch], outcome)
        return outcome

    async def _reconcile(
        self, rows: list[repo.MessageRow], outcome: Outcome
    ) -> list[repo.MessageRow]:
        """Rows left ``sending``: accept what the provider saw, requeue what it never saw."""
        resend: list[repo.MessageRow] = []
        for row in rows:
            found = await self._lookup(row.client_ref)
            if found is not None and found.provider_message_id:
                outcome.accepted += len(await self._accept([(row.id, found.provider_message_id)]))
            elif found is None:
                await self._move([row.id], Q, [S], "provider never saw it; resending")
                resend.append(row)
        return resend

    async def _lookup(self, client_ref: str) -> ProviderResult | None:
        for attempt in range(self._max_attempts):
            try:
                return await self._provider.lookup(client_ref)
            except ProviderUnavailable:
                await asyncio.sleep(_backoff(attempt))
        raise ProviderUnavailable(f"lookup of {client_ref} failed {self._max_attempts} times")

    async def _send_chunk(self, chunk: list[repo.MessageRow], outcome: Outcome) -> None:
        while chunk:
            granted = await self._infra(partial(self._bucket.acquire, len(chunk)))
            part, chunk = chunk[:granted], chunk[granted:]
            moved = await self._move([r.id for r in part], S, [Q], "calling provider",
                                     count_attempt=True)
            part = [r for r in part if r.id in moved]
            if part:
                await self._call(part, outcome)

    async def _call(self, part: list[repo.MessageRow], outcome: Outcome) -> None:
        outgoing = [Outgoing(client_ref=r.client_ref, to=r.phone, body=r.body) for r in part]
        results = await self._call_with_retries(outgoing, part)
        by_ref = {r.client_ref: r for r in part}
        accepted = [
            (by_ref[res.client_ref].id, res.provider_message_id)
            for res in results
            if res.accepted and res.provider_message_id
        ]
        outcome.accepted += len(await self._accept(accepted))
        for res in results:
            if not res.accepted:
                outcome.failed += len(await self._move(
                    [by_ref[res.client_ref].id], MessageState.FAILED, [S],
                    f"provider rejected: {res.error}",
                ))

    async def _call_with_retries(
        self, outgoing: list[Outgoing], part: list[repo.MessageRow]
    ) -> list[ProviderResult]:
        attempt = 0
        while True:
            try:
                return await self._provider.send(outgoing)
            except ProviderRateLimited as exc:
                log.info("provider_429", retry_after=exc.retry_after, size=len(outgoing))
                await asyncio.sleep(exc.retry_after)
            except ProviderUnavailable as exc:
                attempt += 1
                if attempt >= self._max_attempts:
                    raise DispatchFailed(
                        str(exc), message_keys=[r.message_key for r in part]
                    ) from exc
                log.warning("provider_retry", error=str(exc), attempt=attempt)
                await asyncio.sleep(_backoff(attempt))
            except ProviderError as exc:
                raise DispatchFailed(str(exc), message_keys=[r.message_key for r in part]) from exc


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped at 10 s."""
    return float(random.uniform(0, min(10.0, 0.2 * 2**attempt)))

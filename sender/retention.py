"""Retention of the message log: messages in a final state older than
``message_retention_days`` are deleted in batches of ``message_retention_batch``, with the
rows keyed by them (``sender.retention_repo``), so the log does not grow without bound.

Run by ``hexcast messages prune`` and, every ``message_retention_every_s``, by the scheduler
process (any number of replicas: their batches skip each other's locked rows). Each batch is
its own short transaction; a run walks the primary key once, from the lowest id to the
highest id created before the cut-off.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from sender.retention_repo import delete_batch, last_old_id

__all__ = ["Pruned", "prune_messages", "prune_messages_every"]

log = get_logger("hexcast.retention")


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a run deleted: messages per batch (statement), and the rows keyed by them."""

    batches: tuple[int, ...]
    dependants: int

    @property
    def messages(self) -> int:
        return sum(self.batches)


async def prune_messages(
    pool: asyncpg.Pool, *, older_than_days: int, batch: int, now: datetime | None = None
) -> Pruned:
    """Delete every final message created and last changed more than ``older_than_days``
    days before ``now``, at most ``batch`` a statement, lowest ids first."""
    before = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    batches: list[int] = []
    dependants, after = 0, 0
    async with pool.acquire() as conn:
        upto = await last_old_id(conn, before=before)
    while upto is not None:
        async with pool.acquire() as conn:  # one connection a batch: the pool is shared
            done = await delete_batch(conn, after_id=after, upto_id=upto, before=before,
                                      limit=batch)
        if done.last_id is None:
            break
        batches.append(done.messages)
        dependants, after = dependants + done.dependants, done.last_id
        if done.messages < batch:  # SKIP LOCKED fills a batch while rows are left
            break
    return Pruned(tuple(batches), dependants)


async def prune_messages_every(pool: asyncpg.Pool, settings: Settings) -> None:
    """The scheduler's retention task: a run now, then every ``message_retention_every_s``
    (0: never); a failed run is logged and the next one retries."""
    every = settings.message_retention_every_s
    while every > 0:
        try:
            pruned = await prune_messages(pool, older_than_days=settings.message_retention_days,
                                          batch=settings.message_retention_batch)
            log.info("messages_pruned", messages=pruned.messages, batches=len(pruned.batches),
                     dependants=pruned.dependants, older_than_days=settings.message_retention_days)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retention never stops the scheduler
            log.warning("message_retention_failed", error=f"{type(exc).__name__}: {exc}"[:500])
        await asyncio.sleep(every)

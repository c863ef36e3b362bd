"""The `archiver` worker: copies visit records into PostgreSQL in batches, idempotently.

One bad event costs only itself: records are screened event by event (a bad event is
dead-lettered as a record holding only it), and a statement that fails (a tenant that does
not exist, a value a column refuses) is retried in halves until the events that fail on their
own are found; those are dead-lettered, the others are stored. A retry stores nothing twice
(the insert skips events already stored). PostgreSQL outages pause the archiver instead.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import faust

from hexcast.core.db import PG_OUTAGES, connect_pool
from hexcast.core.deadletter import Letter, dead_letter, screen_all
from hexcast.core.faustapp import raw_topic
from hexcast.core.isolation import isolate
from hexcast.core.logging import get_logger
from hexcast.core.retry import until_available
from hexcast.core.settings import Settings
from streams.metrics import ARCHIVER_DEAD_LETTERS, ARCHIVER_VISITS
from streams.models import VisitEvent, VisitRecord
from streams.repo import insert_visits

__all__ = ["register_archiver"]

log = get_logger("hexcast.archiver")
Event = tuple[VisitRecord, VisitEvent]


def register_archiver(app: faust.App, settings: Settings) -> None:
    """Register the agent that stores ``visits`` records, up to 500 records per statement."""
    visits = raw_topic(app, settings, "visits")
    dlq = raw_topic(app, settings, "send.dlq")

    async def archive(stream: Any) -> None:
        pool = await connect_pool(settings.database_url, max_size=2)
        try:
            async for events in stream.take_events(500, within=0.5):
                records, letters = screen_all(VisitRecord, [(e.message.key, e.message.value)
                                                            for e in events], what="bad visit record")
                stored, failed = await store_isolated(pool, records)
                unstored = _unstored(failed)
                ARCHIVER_VISITS.inc(stored)
                _count_letters(bad_record=len(letters), not_stored=len(unstored))
                letters += unstored
                for letter in letters:
                    log.error("dead_letter", reason=letter.reason[:300])
                    await dlq.send(key=letter.key, value=dead_letter(
                        visits.get_topic_name(), letter.key, letter.reason, letter.payload))
                log.debug("visits_archived", records=len(records), stored=stored)
        finally:
            await pool.close()

    app.agent(visits, name="archive_visits")(archive)


def _count_letters(**by_reason: int) -> None:
    for reason, n in by_reason.items():
        if n:
            ARCHIVER_DEAD_LETTERS.labels(reason).inc(n)


def _unstored(failed: list[tuple[tuple[bytes | None, Event], str]]) -> list[Letter]:
    """A letter per record and reason, holding only the events that failed alone for it."""
    alone: dict[tuple[int, str], tuple[bytes | None, VisitRecord, list[VisitEvent]]] = {}
    for (key, (record, event)), why in failed:
        alone.setdefault((id(record), why), (key, record, []))[2].append(event)
    return [Letter(key, record.model_copy(update={"events": events}).encode(),
                   f"not stored: {why} (events {', '.join(repr(e.event_id) for e in events)})")
            for (_, why), (key, record, events) in alone.items()]


async def store_isolated(
    pool: asyncpg.Pool, records: list[tuple[bytes | None, VisitRecord]],
) -> tuple[int, list[tuple[tuple[bytes | None, Event], str]]]:
    """Store the records' events, in one statement when none fails; returns how many rows were
    inserted, and the (key, event) pairs that fail on their own with why."""
    try:
        return await _insert(pool, [r for _, r in records]), []
    except Exception as exc:  # noqa: BLE001 - found event by event below
        tried = exc

    async def run(group: list[tuple[bytes | None, Event]]) -> int:
        return await _insert(pool, _records(group))

    everything = [(key, (r, e)) for key, r in records for e in r.events]
    counts, failed = await isolate(everything, run, log=log, event="archive_group_failed",
                                   tried=tried)
    return sum(counts), failed


async def _insert(pool: asyncpg.Pool, records: list[VisitRecord]) -> int:
    """``insert_visits``, waiting out PostgreSQL outages (nothing is dropped meanwhile)."""
    async def insert() -> int:
        async with pool.acquire() as conn:
            return await insert_visits(conn, records=records)

    return await until_available(insert, errors=PG_OUTAGES, log=log, event="archiving_paused")


def _records(group: list[tuple[bytes | None, Event]]) -> list[VisitRecord]:
    """The records of ``group``'s events, each with only those events."""
    events: dict[int, tuple[VisitRecord, list[VisitEvent]]] = {}
    for _, (record, event) in group:
        events.setdefault(id(record), (record, []))[1].append(event)
    return [record.model_copy(update={"events": found}) for record, found in events.values()]

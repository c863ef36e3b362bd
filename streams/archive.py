"""The `archiver` worker: copies visit records into PostgreSQL in batches, idempotently."""

from __future__ import annotations

from typing import Any

import faust
from pydantic import ValidationError

from hexcast.db import connect_pool
from hexcast.logging import get_logger
from hexcast.settings import Settings
from sender.agents import dead_letter
from streams.app import raw_topic
from streams.models import VisitRecord
from streams.repo import insert_visits

__all__ = ["register_archiver"]

log = get_logger("hexcast.archiver")


def register_archiver(app: faust.App, settings: Settings) -> None:
    """Register the agent that stores ``visits`` records, up to 500 records per statement."""
    visits = raw_topic(app, settings, "visits")
    dlq = raw_topic(app, settings, "send.dlq")

    async def archive(stream: Any) -> None:
        pool = await connect_pool(settings.database_url, max_size=2)
        try:
            async for batch in stream.take(500, within=0.5):
                records = []
                for value in batch:
                    try:
                        records.append(VisitRecord.decode(value))
                    except ValidationError as exc:
                        await dlq.send(value=dead_letter(visits.get_topic_name(), None,
                                                         f"bad visit record: {exc}", value))
                async with pool.acquire() as conn:
                    stored = await insert_visits(conn, records=records)
                log.debug("visits_archived", records=len(records), stored=stored)
        finally:
            await pool.close()

    app.agent(visits, name="archive_visits")(archive)

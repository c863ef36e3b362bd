"""Faust agents of the matcher: visits → send requests on ``send.geo``."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from pydantic import ValidationError

from hexcast.logging import get_logger
from hexcast.settings import Settings
from sender.agents import dead_letter
from sender.models import Lane, SendBatch
from streams.app import raw_topic
from streams.feed import StateFeed
from streams.matcher import MatchState
from streams.models import VisitRecord

__all__ = ["register_matcher"]

log = get_logger("hexcast.matcher")


def register_matcher(app: faust.App, settings: Settings) -> MatchState:
    """Register the state feed task and the visits agent; returns the shared state."""
    state = MatchState(resolution=settings.h3_resolution, ttl=timedelta(seconds=settings.geo_ttl_s))
    feed = StateFeed(settings, state)
    visits = raw_topic(app, settings, "visits")
    send_geo = raw_topic(app, settings, Lane.GEO.topic)
    dlq = raw_topic(app, settings, "send.dlq")
    totals: Counter[str] = Counter()

    async def feed_task() -> None:
        await feed.run()

    async def match_visits(stream: Any) -> None:
        await feed.ready.wait()
        async for key, value in stream.items():
            try:
                record = VisitRecord.decode(value)
                result = state.match(record)
            except ValidationError as exc:
                await _dead(dlq, visits, key, value, f"bad visit record: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop matching
                log.exception("match_failed")
                await _dead(dlq, visits, key, value, f"{type(exc).__name__}: {exc}")
                continue
            totals.update(result.counts)
            if result.requests:
                batch = SendBatch(lane=Lane.GEO, items=result.requests, created_at=datetime.now(UTC))
                await send_geo.send(key=key, value=batch.encode())
                log.info("matched", tenant_id=record.tenant_id, user_id=record.user_id,
                         message_keys=[r.message_key for r in result.requests])

    app.task(feed_task)
    app.agent(visits, name="match_visits")(match_visits)
    return state


async def _dead(dlq: Any, source: Any, key: bytes | None, value: bytes, reason: str) -> None:
    await dlq.send(key=key, value=dead_letter(source.get_topic_name(), key, reason, value))

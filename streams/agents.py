"""Faust agents of the matcher: visits → send requests on ``send.geo``; delivery → budgets."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import redis.exceptions
from pydantic import ValidationError

from hexcast.cache import Keys, connect_redis
from hexcast.logging import get_logger
from hexcast.settings import Settings
from sender.agents import dead_letter
from sender.models import DeliveryBatch, DeliveryEvent, Lane, SendBatch
from streams.app import raw_topic
from streams.feed import StateFeed
from streams.gate import SendGate
from streams.matcher import MatchResult, MatchState
from streams.metrics import MatcherMetrics
from streams.models import VisitRecord

__all__ = ["MatcherWorker", "register_matcher"]

log = get_logger("hexcast.matcher")
_PRESENCE_KEEP = timedelta(hours=13)  # longer than any max_gap_minutes (720)
BATCH_RECORDS = 200
"""Visit records matched together, with one Redis call for all of their candidate sends."""
BATCH_WAIT_S = 0.02
"""How long a batch waits to fill: the latency added when traffic is light."""


class MatcherWorker:
    """What one matcher process holds: the state, its feed, the Redis gate and metrics."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.state = MatchState(resolution=settings.h3_resolution,
                                ttl=timedelta(seconds=settings.geo_ttl_s))
        self.feed = StateFeed(settings, self.state)
        self.visits = raw_topic(app, settings, "visits")
        self.send_geo = raw_topic(app, settings, Lane.GEO.topic)
        self.delivery = raw_topic(app, settings, "delivery")
        self.dlq = raw_topic(app, settings, "send.dlq")
        client = connect_redis(settings.redis_url)
        keys = Keys(settings.redis_prefix)
        self.gate = SendGate(client, keys, cap_per_day=settings.matcher_cap_per_day,
                             cap_per_24h=settings.matcher_cap_per_24h)
        self.metrics = MatcherMetrics(client, keys)
        self.per_visit = settings.matcher_max_per_visit

    def _match(self, event: Any) -> tuple[VisitRecord, MatchResult] | str:
        """The record and its match, or why it goes to the dead-letter topic."""
        try:
            record = VisitRecord.decode(event.value)
            return record, self.state.match(record, max_per_visit=self.per_visit)
        except ValidationError as exc:
            return f"bad visit record: {exc}"
        except Exception as exc:  # noqa: BLE001 - one bad record must not stop matching
            log.exception("match_failed")
            return f"{type(exc).__name__}: {exc}"

    async def match_batch(self, events: Sequence[Any]) -> None:
        """Match a batch of records; one Redis call decides every candidate send in it."""
        matched: list[tuple[Any, VisitRecord, MatchResult]] = []
        for event in events:
            found = self._match(event)
            if isinstance(found, str):
                await self._dead(event.key, event.value, found)
            else:
                matched.append((event, *found))
        results = [result for _, _, result in matched]
        try:
            allowed = await self.gate.decide_many(results) if any(r.visits for r in results) else []
        except redis.exceptions.ResponseError as exc:  # a script error: never a send without state
            log.error("gate_failed", error=str(exc)[:300])
            for event, _, result in matched:
                if result.visits:
                    await self._dead(event.key, event.value, f"gate failed: {exc}")
            allowed = []
        for n, (event, record, result) in enumerate(matched):
            self.metrics.add(record.tenant_id, result.counts)
            requests = allowed[n] if allowed else []
            if requests:
                batch = SendBatch(lane=Lane.GEO, items=requests, created_at=datetime.now(UTC))
                await self.send_geo.send(key=event.key, value=batch.encode())
                log.info("matched", tenant_id=record.tenant_id, user_id=record.user_id,
                         message_keys=[r.message_key for r in requests])

    async def match_visits(self, stream: Any) -> None:
        await self.feed.ready.wait()
        _freeze_loaded_state()
        async for events in stream.take_events(BATCH_RECORDS, within=BATCH_WAIT_S):
            await self.match_batch(events)
            if self.metrics.due():
                await self.metrics.flush()

    async def release_budgets(self, stream: Any) -> None:
        """Budget slots of geo messages that ended suppressed/expired/failed come back."""
        async for values in stream.take(500, within=0.5):
            events = [e for v in values for e in _delivery(v)]
            for e in await self.gate.release(events):
                log.info("budget_released", tenant_id=e.tenant_id, message_key=e.message_key)
                self.metrics.add(e.tenant_id, Counter(budget_released=1))

    async def housekeeping(self) -> None:
        if self.metrics.due():
            await self.metrics.flush()

    async def prune(self) -> None:
        dropped = self.state.presence.prune(datetime.now(UTC) - _PRESENCE_KEEP)
        if dropped:
            log.info("presence_pruned", users=dropped, left=len(self.state.presence))

    async def _dead(self, key: bytes | None, value: bytes, reason: str) -> None:
        letter = dead_letter(self.visits.get_topic_name(), key, reason, value)
        await self.dlq.send(key=key, value=letter)


def _freeze_loaded_state() -> None:
    """Move the loaded catalog and profiles out of the cyclic collector's reach.

    They are most of the process's objects and live as long as it does, yet every full
    collection walked them all (0.45 s with 10,000 stores and 100,000 profiles), holding the
    event loop each time. Frozen objects are still freed by reference counting when replaced.
    """
    gc.collect()
    gc.freeze()
    log.info("state_frozen", objects=gc.get_freeze_count())


def register_matcher(app: faust.App, settings: Settings) -> MatchState:
    """Register the state feed, the visits and delivery agents; returns the shared state."""
    worker = MatcherWorker(app, settings)

    async def feed_task() -> None:
        await worker.feed.run()

    async def match_visits(stream: Any) -> None:
        await worker.match_visits(stream)

    async def release_budgets(stream: Any) -> None:
        await worker.release_budgets(stream)

    async def housekeeping() -> None:
        await worker.housekeeping()

    async def prune() -> None:
        await worker.prune()

    app.task(feed_task)
    app.agent(worker.visits, name="match_visits")(match_visits)
    app.agent(worker.delivery, name="release_budgets")(release_budgets)
    app.timer(1.0)(housekeeping)
    app.timer(300.0)(prune)
    return worker.state


def _delivery(value: bytes) -> list[DeliveryEvent]:
    try:
        return DeliveryBatch.decode(value).events
    except ValidationError as exc:
        log.error("bad_delivery_event", error=str(exc)[:300])
        return []

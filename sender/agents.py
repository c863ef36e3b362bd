"""Faust agents of the sender: one lane per worker process (``hexcast sender --lane geo``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from typing import Any

import faust
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hexcast.core.bus import Bus
from hexcast.core.cache import Keys, connect_redis
from hexcast.core.control import RunControl
from hexcast.core.db import connect_pool
from hexcast.core.deadletter import Letter, dead_letter
from hexcast.core.faustapp import raw_topic
from hexcast.core.logging import get_logger
from hexcast.core.metrics import refresh_every
from hexcast.core.settings import Settings
from sender import cutover, gauges, metrics
from sender.deliveries import route_deliveries
from sender.dispatch import Dispatcher, Policy
from sender.holds import Holds
from sender.isolation import screen_records, send_isolated
from sender.journal import Journal, Store
from sender.limits import CapRule, RecipientCaps
from sender.models import DeliveryEvent, Lane, delivery_records
from sender.providers.base import Connected
from sender.routing import Router, build_router, provider_specs
from sender.run_gate import RunGate
from sender.shortener import LinkShortener
from sender.tenant_rules import RulesLoader, TenantRules, TenantRulesCache, read_tenant_rules
from sender.tenant_senders import TenantSenders

__all__ = ["register_sender"]

log = get_logger("hexcast.sender")

#: How long a tenant's window and caps are kept: a change applies within this time.
TENANT_RULES_TTL_S = 30.0


class _Worker:
    """What every actor of one sender process shares: pools, router (breakers), dispatcher
    (its busy set) and one sweeper. Opened by the first actor, closed by the last."""

    def __init__(self, settings: Settings, lane: Lane) -> None:
        self.settings, self.lane = settings, lane
        self._lock = asyncio.Lock()
        self._users = 0
        self._close: list[Any] = []
        self.dispatcher: Dispatcher
        self.router: Router
        self.redis: aioredis.Redis
        self.keys: Keys

    async def __aenter__(self) -> _Worker:
        async with self._lock:
            if self._users == 0:
                await self._open()
            self._users += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        async with self._lock:
            self._users -= 1
            if self._users == 0:
                for close in reversed(self._close):
                    await close()
                self._close = []

    async def _open(self) -> None:
        settings, lane = self.settings, self.lane
        pool = await connect_pool(settings.database_url, max_size=8)
        redis = connect_redis(settings.redis_url)
        async def dry_run() -> set[int]:
            async with pool.acquire() as conn:
                return await cutover.dry_run_tenants(conn)

        self.router = router = build_router(settings, redis, lane, dry_run=dry_run)
        bus = Bus(settings)
        await bus.start()

        async def publish(events: list[DeliveryEvent]) -> None:
            await bus.publish_many("delivery", delivery_records(events))

        async def tenant_rules(tenant_ids: Collection[int]) -> dict[int, TenantRules]:
            async with pool.acquire() as conn:
                return await read_tenant_rules(conn, tenant_ids)

        self.dispatcher = build_dispatcher(settings, lane, Journal(
            pool=pool, actor=f"sender-{lane.value}", publish=publish), router, redis,
            rules=TenantRulesCache(tenant_rules, ttl_s=TENANT_RULES_TTL_S))
        for route in router.routes:  # SMPP binds: receipts and replies come over them
            if isinstance(route.adapter, Connected):
                route.adapter.deliver_to(route_deliveries(route.spec, pool, bus, publish))
        keys = Keys(settings.redis_prefix)
        tasks = [asyncio.create_task(_sweep_forever(self.dispatcher, settings, lane)),
                 asyncio.create_task(refresh_every(gauges.REFRESH_S, gauges.binds_refresher(router),
                                                   name="smpp_live_binds")),
                 asyncio.create_task(refresh_every(
                     gauges.REFRESH_S, gauges.redis_refresher(router, redis, keys),
                     name="route_states_dlq_depth"))]
        self.redis, self.keys = redis, keys

        async def stop_sweeper() -> None:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        self._close = [pool.close, redis.aclose, bus.stop, router.aclose, stop_sweeper]
        log.info("sender_started", lane=lane.value, providers=router.breaker_states())


def register_sender(app: faust.App, settings: Settings, *, lane: Lane) -> None:
    """Register the agent consuming ``send.<lane>`` on ``app``.

    On start, and then every ``sender_sweep_interval_s``, the worker sweeps its lane for rows
    a crashed sender left ``sending`` (reconciled by lookup) or ``queued``, so recovery does
    not wait for the broker to redeliver the record.

    The bulk lane runs ``sender_bulk_concurrency`` actors (default 1), each cutting its chunk
    into ``sender_bulk_parts`` slices worked on side by side; faust commits a partition's
    offset only up to its oldest unfinished record, so a crash still redelivers every
    unfinished one. Geo and otp keep one actor (a user's sends stay in order) and take the
    records that have arrived in groups sent as one batch.
    """
    provider_specs(settings)  # a bad HEXCAST_SENDER_PROVIDERS stops the process here (ConfigError)
    source = raw_topic(app, settings, lane.topic)
    dlq = raw_topic(app, settings, "send.dlq")
    worker = _Worker(settings, lane)

    async def dead(letters: list[Letter]) -> None:
        for key, value, reason in letters:
            log.error("dead_letter", lane=lane.value, reason=reason)
            await dlq.send(key=key, value=dead_letter(source.get_topic_name(), key, reason, value))
        metrics.count_letters(lane.value, (reason for _, _, reason in letters))
        with contextlib.suppress(RedisError):  # the depth gauge is not worth a stall
            await gauges.note_letters(worker.redis, worker.keys, len(letters))

    async def send_agent(stream: Any) -> None:
        async with worker:
            if lane is Lane.BULK:  # a record is a chunk of up to 1,000 already
                async for key, value in stream.items():
                    await dead(await _process(worker.dispatcher, [(key, value)]))
                return
            # Geo and otp records carry a send or a few: take what has arrived (up to
            # sender_micro_batch records, waiting at most sender_micro_batch_wait_s) and send
            # them together; faust acks the group's records after it is done.
            async for events in stream.take_events(settings.sender_micro_batch,
                                                   within=settings.sender_micro_batch_wait_s):
                await dead(await _process(worker.dispatcher,
                                          [(e.message.key, e.message.value) for e in events]))

    concurrency = settings.sender_bulk_concurrency if lane is Lane.BULK else 1
    app.agent(source, name=f"send_{lane.value}", concurrency=concurrency)(send_agent)


def build_dispatcher(
    settings: Settings, lane: Lane, store: Store, router: Router, redis: aioredis.Redis,
    *, rules: RulesLoader | None = None,
) -> Dispatcher:
    """A lane's dispatcher with the steps its settings ask for; ``rules``: each tenant's own
    window and caps for the holds (cached: see :class:`TenantRulesCache`)."""
    keys = Keys(settings.redis_prefix)
    links = None
    if settings.sender_shorten_links:
        links = LinkShortener(store=store, base_url=settings.api_public_url)
    return Dispatcher(
        lane=lane, store=store, router=router,
        policy=Policy(max_attempts=settings.provider_max_attempts,
                      reconcile_grace_s=settings.sender_reconcile_grace_s,
                      geo_ttl_s=settings.geo_ttl_s, bulk_parts=settings.sender_bulk_parts,
                      fault_kill_after_calls=settings.sender_fault_kill_after_calls),
        holds=Holds(store=store, quiet_hours=settings.sender_quiet_hours,
                    caps=RecipientCaps(redis), cap_rules=_cap_rules(settings), keys=keys,
                    rules=rules),
        runs=RunGate(store=store, control=RunControl(redis, keys), keys=keys,
                     pause_recheck_s=settings.sender_pause_recheck_s),
        links=links, senders=TenantSenders(rules) if rules is not None else None,
    )


def _cap_rules(settings: Settings) -> tuple[CapRule, CapRule]:
    spacing = settings.sender_cap_min_spacing_s
    return (CapRule(settings.sender_cap_per_day, settings.sender_cap_per_24h, spacing),
            CapRule(settings.sender_cap_per_day, settings.sender_cap_strict_per_24h, spacing))


async def _sweep_forever(dispatcher: Dispatcher, settings: Settings, lane: Lane) -> None:
    while True:
        try:
            outcome = await dispatcher.sweep(older_than_s=settings.sender_reconcile_grace_s)
            if any(outcome.as_dict().values()):
                log.info("swept", lane=lane.value, **outcome.as_dict())
        except Exception:  # noqa: BLE001 - the sweeper must outlive one bad round
            log.exception("sweep_failed", lane=lane.value)
        await asyncio.sleep(settings.sender_sweep_interval_s)


async def _process(
    dispatcher: Dispatcher, records: list[tuple[bytes | None, bytes]]
) -> list[Letter]:
    """Handle a group of records as one; returns the letters for the dead-letter topic: the
    messages refused by the screen, those that failed for good, and those that failed the
    group on their own (each letter holds only its messages; the others went on)."""
    taken, letters = screen_records(records)
    if not taken:
        return letters
    outcome, dead = await send_isolated(dispatcher, taken)
    log.info("batch_done", lane=taken[0][1].lane.value, records=len(taken),
             size=sum(len(b.items) for _, b in taken), **outcome.as_dict())
    return letters + dead

"""One tenant of a running api, seeded with one object of each kind (:func:`seed_objects`), with
what it has stored and what the api published, to compare before and after a request."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from hexcast.core.kafka import delete_topics
from hexcast.core.topics import create_topics, topic_specs
from hexcast.testing import CONSENT, Stack, make_settings, make_tenant, seed_objects

__all__ = ["CAMPAIGN", "CONSENT", "MARK", "PROMO", "STORE", "World", "api_world"]

MARK = "@@"
"""Where :meth:`World.send` puts its ``poison`` in a body."""
STORE = {"name": "s", "lat": 41.88, "lng": -87.62, "time_zone": "America/Chicago",
         "geofence": {"type": "circle", "radius_m": 50}}
PROMO = {"store_id": "$store", "name": "p", "body": "20% off"}
CAMPAIGN = {"name": "c", "body": "Hi", "segment": {"everyone": True}, "run_at": "2030-11-26T09:00:00",
            "time_zone": "America/Chicago"}
_TABLES = ("stores", "promotions", "recipients", "templates", "campaigns", "inbound_messages",
           "idempotency_keys", "messages")


async def _consumer(servers: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers)  # it binds to the running loop
    await consumer.start()
    return consumer


class World:
    """One tenant with one object of each kind; what it has stored and what the api
    published, to compare before and after a request. Request paths and bodies name the
    objects by placeholder: ``$tenant``, ``$store``, ``$promotion``, ``$campaign``, ``$user``
    (ids), ``$now`` (an instant)."""

    def __init__(self, stack: Stack, database_url: str) -> None:
        self.settings = stack.settings
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.run(asyncpg.connect(database_url))
        tenant = self.run(make_tenant(self.conn, prefix="text"))
        self.tenant_id: int = tenant.id
        self.consumer: AIOKafkaConsumer = self.run(_consumer(self.settings.bootstrap_servers))
        self.api = httpx.Client(base_url=stack.api_url, headers={"X-API-Key": tenant.api_key}, timeout=30)
        seeded = seed_objects(self.api, tag="text").first()
        self.ids = {"$tenant": str(self.tenant_id), "$now": datetime.now(UTC).isoformat(),
                    "$store": seeded["store_id"], "$promotion": seeded["promotion_id"],
                    "$campaign": seeded["campaign_id"], "$user": seeded["user_id"]}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def send(self, method: str, path: str, body: dict[str, Any], poison: str) -> httpx.Response:
        """``body`` as JSON text, each ``@@`` replaced by ``poison`` (a JSON escape)."""
        text = json.dumps(body).replace(MARK, poison)
        for name, value in self.ids.items():  # placeholders: numeric ids as numbers
            text = text.replace(f'"{name}"', value if value.isdigit() else json.dumps(value))
            path = path.replace(name, value)
        headers = {"content-type": "application/json", "Idempotency-Key": uuid.uuid4().hex,
                   "Authorization": f"Bearer {self.settings.dlr_webhook_token}"}
        return self.api.request(method, path, content=text.encode(), headers=headers)

    def snapshot(self) -> tuple[Any, ...]:
        """The tenant's rows in every table a request may write, and every topic's end offsets."""
        rows = [self.run(self.conn.fetchval(
            f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t"
            " WHERE tenant_id = $1", self.tenant_id)) for table in _TABLES]
        parts = [TopicPartition(topic, p) for topic, spec in topic_specs(self.settings).items()
                 for p in range(spec.partitions)]
        return (*rows, self.run(self.consumer.end_offsets(parts)))

    def close(self) -> None:
        self.api.close()
        self.run(self.consumer.stop())
        self.run(self.conn.close())
        self.loop.close()


@contextmanager
def api_world(broker_url: str, database_url: str, log_dir: Path) -> Iterator[World]:
    """An api process on fresh topics, and a seeded tenant of it."""
    settings = make_settings(broker_url, database_url)
    asyncio.run(create_topics(settings))
    stack = Stack(settings, log_dir, processes={"api": ["api"]}).start()
    try:
        made = World(stack, database_url)
        try:
            yield made
        finally:
            made.close()
    finally:
        stack.stop()
        asyncio.run(delete_topics(settings.bootstrap_servers, topic_specs(settings)))

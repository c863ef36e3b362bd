"""Real services for integration tests: a tansu broker, a throwaway database, Redis prefix."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from hexcast.broker import EmbeddedBroker, delete_topics
from hexcast.settings import Settings, load_settings
from hexcast.topics import create_topics, topic_specs
from tests.pg import SERVER_DSN, create_database, drop_database, dsn

REDIS_URL = os.environ.get("HEXCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    external = os.environ.get("HEXCAST_TEST_BROKER_URL")
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.url


_dsn = dsn  # the throwaway-database helpers live in tests/pg.py; re-exported for older imports
__all__ = ["SERVER_DSN", "create_database", "drop_database", "make_settings"]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = asyncio.run(create_database())
    yield _dsn(name)
    asyncio.run(drop_database(name))


def make_settings(broker_url: str, database_url: str, **extra: object) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return load_settings(
        broker_url=broker_url,
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=f"hxtest:{tag}:",
        topic_prefix=f"t{tag}.",
        app_id=f"hexcast-test-{tag}",
        topic_partitions=2,
        broker_rebalance_timeout=2.0,
        # Tests must not depend on the time of day, nor on how fast they send to one number.
        **{"sender_quiet_hours": False, "sender_cap_min_spacing_s": 0.0, **extra},
    )


@pytest.fixture
async def settings(broker_url: str, database_url: str) -> AsyncIterator[Settings]:
    """Fresh topic names, Redis prefix and consumer groups; the database is shared."""
    s = make_settings(broker_url, database_url)
    await create_topics(s)
    yield s
    await delete_topics(s.bootstrap_servers, topic_specs(s))
    await _clear_redis(s)


async def _clear_redis(s: Settings) -> None:
    from hexcast.cache import connect_redis

    client = connect_redis(s.redis_url)
    try:
        async for key in client.scan_iter(match=f"{s.redis_prefix}*"):
            await client.delete(key)
    finally:
        await client.aclose()

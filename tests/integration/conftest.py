"""Real services for integration tests: a tansu broker, a throwaway database, Redis prefix."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hexcast.core.kafka import delete_topics
from hexcast.core.settings import Settings, load_settings
from hexcast.core.topics import create_topics, topic_specs
from hexcast.devstack.broker import EmbeddedBroker
from tests.pg import SERVER_DSN, create_database, drop_database, dsn

REDIS_URL = os.environ.get("HEXCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")
_PREFIXES: list[str] = []
"""Every Redis key prefix handed out this session; their keys are deleted when it ends."""
_STATE = Path(tempfile.gettempdir()) / f"hexcast-tests-{os.getpid()}"
"""The state directory (faust data) of every settings object of this session."""


@pytest.fixture(scope="session", autouse=True)
def _session_state_cleared() -> Iterator[None]:
    yield
    asyncio.run(_clear_prefixes(list(_PREFIXES)))
    shutil.rmtree(_STATE, ignore_errors=True)


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    external = os.environ.get("HEXCAST_TEST_BROKER_URL")
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.url


_dsn = dsn  # the throwaway-database helpers live in tests/pg.py; re-exported for older imports
__all__ = ["OPERATOR_TOKEN", "SERVER_DSN", "create_database", "drop_database", "make_settings"]
OPERATOR_TOKEN = "integration-operator-token"
"""Every test settings object's operator token (``/metrics``, ``/metrics/matcher``)."""


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = asyncio.run(create_database())
    yield _dsn(name)
    asyncio.run(drop_database(name))


def make_settings(broker_url: str, database_url: str, **extra: object) -> Settings:
    tag = uuid.uuid4().hex[:8]
    _PREFIXES.append(f"hxtest:{tag}:")
    return load_settings(
        broker_url=broker_url,
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=f"hxtest:{tag}:",
        state_dir=str(_STATE / tag),
        topic_prefix=f"t{tag}.",
        app_id=f"hexcast-test-{tag}",
        topic_partitions=2,
        broker_rebalance_timeout=2.0,
        # Tests must not depend on the time of day, nor on how fast they send to one number.
        **{"sender_quiet_hours": False, "sender_cap_min_spacing_s": 0.0,
           "operator_token": OPERATOR_TOKEN, **extra},
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
    await _clear_prefixes([s.redis_prefix])


async def _clear_prefixes(prefixes: list[str]) -> None:
    from hexcast.core.cache import connect_redis

    if not prefixes:
        return
    client = connect_redis(REDIS_URL)
    try:
        # One pass over the keyspace, whatever the number of prefixes.
        pattern = f"{prefixes[0]}*" if len(prefixes) == 1 else "hxtest:*"
        wanted = tuple(p.encode() for p in prefixes)
        batch: list[bytes] = []
        async for key in client.scan_iter(match=pattern, count=5000):
            if key.startswith(wanted):
                batch.append(key)
            if len(batch) >= 5000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()

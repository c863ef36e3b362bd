"""The services of the integration tests as pytest fixtures: a broker (embedded tansu unless
``HEXCAST_TEST_BROKER_URL``), one throwaway database for the session, and fresh topics and a
Redis prefix per test. The helpers themselves live in :mod:`hexcast.testing`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from hexcast.core.kafka import delete_topics
from hexcast.core.settings import Settings
from hexcast.core.topics import create_topics, topic_specs
from hexcast.testing import (
    clear_prefixes,
    clear_session_state,
    make_settings,
    running_broker,
    throwaway_database_sync,
)


@pytest.fixture(scope="session", autouse=True)
def _session_state_cleared() -> Iterator[None]:
    yield
    clear_session_state()


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    with running_broker() as url:
        yield url


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with throwaway_database_sync() as url:
        yield url


@pytest.fixture
async def settings(broker_url: str, database_url: str) -> AsyncIterator[Settings]:
    """Fresh topic names, Redis prefix and consumer groups; the database is shared."""
    s = make_settings(broker_url, database_url)
    await create_topics(s)
    yield s
    await delete_topics(s.bootstrap_servers, topic_specs(s))
    await clear_prefixes([s.redis_prefix])

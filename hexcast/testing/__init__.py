"""Helpers for testing code that runs on hexcast, and for benchmarking it.

Everything here talks to real services (PostgreSQL, Redis, Kafka, hexcast processes) and
keeps tests apart by naming what each one uses after a fresh tag, so tests can share a server:

- :mod:`~hexcast.testing.console`: :func:`console_session`, a client signed in to the console.
- :mod:`~hexcast.testing.db`: a throwaway, migrated database (``HEXCAST_TEST_PG`` names the
  server): :func:`throwaway_database`, or :func:`create_database` / :func:`drop_database`.
- :mod:`~hexcast.testing.keys`: a Redis key prefix per test (``HEXCAST_TEST_REDIS``) and the
  deletion of every key under the prefixes handed out.
- :mod:`~hexcast.testing.settings`: :func:`make_settings`, settings with their own topics,
  consumer groups, Redis prefix and state directory.
- :mod:`~hexcast.testing.stack`: the broker (:func:`running_broker`: ``HEXCAST_TEST_BROKER_URL``
  or an embedded one) and :class:`Stack`, hexcast processes as children.
- :mod:`~hexcast.testing.simulator`: :func:`running_sim`, the provider simulator alone.
- :mod:`~hexcast.testing.factories`: tenants (with an API key), stores, recipients.
- :mod:`~hexcast.testing.seeding`: one of each object made through the api.
- :mod:`~hexcast.testing.waiting`: :func:`eventually`, polling with a timeout.
- :mod:`~hexcast.testing.webhooks`: :class:`WebhookRecorder`, a webhook in a thread that keeps
  every request (callbacks from the provider simulator or a provider's SDK).

In your own pytest suite, make the services fixtures, once per session::

    import pytest
    from hexcast.testing import clear_session_state, make_settings, running_broker
    from hexcast.testing import throwaway_database_sync

    @pytest.fixture(scope="session")
    def broker_url():
        with running_broker() as url:
            yield url

    @pytest.fixture(scope="session")
    def database_url():
        with throwaway_database_sync() as url:
            yield url

    @pytest.fixture(scope="session", autouse=True)
    def _cleared():
        yield
        clear_session_state()

then a test makes what it needs::

    from hexcast.testing import make_tenant

    async def test_a_key_authenticates(database_url):
        tenant = await make_tenant(database_url, prefix="auth")
        ...

Nothing in hexcast's own packages imports this one: it is for tests and benchmarks only.
"""

from hexcast.testing.console import console_session, form_token
from hexcast.testing.db import (
    SERVER_DSN,
    create_database,
    drop_database,
    dsn,
    fetch_rows,
    throwaway_database,
    throwaway_database_sync,
)
from hexcast.testing.factories import (
    Db,
    TenantRef,
    add_consenting_recipients,
    connected,
    make_recipient,
    make_store,
    make_tenant,
)
from hexcast.testing.keys import REDIS_URL, clear_prefixes, redis_prefix
from hexcast.testing.seeding import CONSENT, SeededObjects, created, recipient_body, seed_objects
from hexcast.testing.settings import OPERATOR_TOKEN, clear_session_state, make_settings
from hexcast.testing.simulator import SimStartError, running_sim
from hexcast.testing.stack import (
    CAMPAIGN_PROCESSES,
    Stack,
    matcher_metrics,
    running_broker,
    running_stack,
    wait_matcher_knows,
)
from hexcast.testing.waiting import eventually
from hexcast.testing.webhooks import RecordedRequest, WebhookRecorder

__all__ = [
    "CAMPAIGN_PROCESSES",
    "CONSENT",
    "OPERATOR_TOKEN",
    "REDIS_URL",
    "SERVER_DSN",
    "Db",
    "RecordedRequest",
    "SeededObjects",
    "SimStartError",
    "Stack",
    "TenantRef",
    "WebhookRecorder",
    "add_consenting_recipients",
    "clear_prefixes",
    "clear_session_state",
    "connected",
    "console_session",
    "create_database",
    "created",
    "drop_database",
    "dsn",
    "eventually",
    "fetch_rows",
    "form_token",
    "make_recipient",
    "make_settings",
    "make_store",
    "make_tenant",
    "matcher_metrics",
    "recipient_body",
    "redis_prefix",
    "running_broker",
    "running_sim",
    "running_stack",
    "seed_objects",
    "throwaway_database",
    "throwaway_database_sync",
    "wait_matcher_knows",
]

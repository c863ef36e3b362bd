"""Settings for one test: its own topics, consumer groups, Redis prefix and state directory.

Everything a test's processes share is named after a fresh tag, so tests can share one broker,
one database and one Redis without seeing each other's records, offsets or keys. Call
:func:`clear_session_state` once when the session ends (a session fixture) to delete the
Redis keys and state directories of every settings object made.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from hexcast.core.settings import Settings, load_settings
from hexcast.testing.keys import REDIS_URL, clear_prefixes, handed_out, new_tag, redis_prefix

__all__ = ["OPERATOR_TOKEN", "STATE_DIR", "clear_session_state", "make_settings"]

OPERATOR_TOKEN = "integration-operator-token"
"""Every test settings object's operator token (the operator routes: ``/metrics``, ``/v1/admin``)."""
STATE_DIR = Path(tempfile.gettempdir()) / f"hexcast-tests-{os.getpid()}"
"""The parent of every test settings object's state directory (faust data) in this process."""


def make_settings(broker_url: str, database_url: str, **extra: object) -> Settings:
    """Settings on ``broker_url`` and ``database_url`` with fresh topic names, consumer groups,
    Redis prefix and state directory; quiet hours and per-number spacing off (tests must not
    depend on the time of day, nor on how fast they send to one number). ``extra`` overrides
    any other setting."""
    tag = new_tag()
    return load_settings(
        broker_url=broker_url,
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix(tag),
        state_dir=str(STATE_DIR / tag),
        topic_prefix=f"t{tag}.",
        app_id=f"hexcast-test-{tag}",
        topic_partitions=2,
        broker_rebalance_timeout=2.0,
        **{"sender_quiet_hours": False, "sender_cap_min_spacing_s": 0.0,
           "operator_token": OPERATOR_TOKEN, "webhook_allow_private_urls": True, **extra},
    )


def clear_session_state() -> None:
    """Delete the Redis keys of every prefix handed out and the state directories."""
    asyncio.run(clear_prefixes(handed_out()))
    shutil.rmtree(STATE_DIR, ignore_errors=True)

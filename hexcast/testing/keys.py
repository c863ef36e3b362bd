"""A Redis key prefix per test, and the cleanup of every key under the prefixes handed out.

Tests share one Redis (``HEXCAST_TEST_REDIS``, default the local one): each settings object
gets its own prefix from :func:`redis_prefix`, so tests never see each other's limits, caps
or budgets. The prefixes are remembered; :func:`clear_prefixes` deletes their keys in one
pass over the keyspace, whatever their number.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence

from hexcast.core.cache import connect_redis

__all__ = [
    "PREFIX_ROOT", "REDIS_URL", "clear_prefixes", "handed_out", "new_tag", "redis_prefix", "scan_pattern",
]

REDIS_URL = os.environ.get("HEXCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")
PREFIX_ROOT = "hxtest:"
"""What every prefix from :func:`redis_prefix` starts with."""
_HANDED_OUT: list[str] = []
_TAG = re.compile(r"[A-Za-z0-9_-]+")
_BATCH = 5000


def new_tag() -> str:
    """Eight random hex digits: what tells one test's topics, groups and keys from another's."""
    return uuid.uuid4().hex[:8]


def redis_prefix(tag: str | None = None, *, root: str = PREFIX_ROOT) -> str:
    """``<root><tag>:`` (a new tag unless given), remembered for :func:`handed_out`."""
    tag = new_tag() if tag is None else tag
    if not _TAG.fullmatch(tag):
        raise ValueError(f"redis prefix tag {tag!r}: letters, digits, - and _ only")
    prefix = f"{root}{tag}:"
    _HANDED_OUT.append(prefix)
    return prefix


def handed_out() -> list[str]:
    """Every prefix :func:`redis_prefix` gave in this process, oldest first."""
    return list(_HANDED_OUT)


def scan_pattern(prefixes: Sequence[str], root: str) -> str:
    """The one ``SCAN MATCH`` pattern that finds the keys of all ``prefixes``: the prefix
    itself when there is one, else everything under ``root``."""
    return f"{prefixes[0]}*" if len(prefixes) == 1 else f"{root}*"


async def clear_prefixes(
    prefixes: Sequence[str], *, url: str = REDIS_URL, root: str = PREFIX_ROOT
) -> int:
    """Delete every key under ``prefixes`` (all under ``root``) in one scan; how many."""
    if not prefixes:
        return 0
    client = connect_redis(url)
    wanted = tuple(p.encode() for p in prefixes)
    batch: list[bytes] = []
    removed = 0
    try:
        async for key in client.scan_iter(match=scan_pattern(prefixes, root), count=_BATCH):
            if key.startswith(wanted):
                batch.append(key)
            if len(batch) >= _BATCH:
                removed += await client.unlink(*batch)
                batch.clear()
        if batch:
            removed += await client.unlink(*batch)
    finally:
        await client.aclose()
    return removed

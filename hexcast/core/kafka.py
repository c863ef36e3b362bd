"""Kafka topic administration: topic specs, creating and deleting topics, waiting for a broker.

The embedded broker (tansu, :mod:`hexcast.devstack.broker`) keeps everything in memory,
auto-creates topics on produce and on metadata requests
for unknown names (with its default partition count), and has no transactions. So topics
are created explicitly with :func:`ensure_topics`, and existence is checked with a
list-all metadata request, never by describing a topic by name.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code

from hexcast.core.errors import ConfigError
from hexcast.core.logging import get_logger

__all__ = [
    "TopicSpec",
    "bootstrap_servers",
    "delete_topics",
    "ensure_topics",
    "wait_for_broker",
    "wait_ready",
]

_log = get_logger(__name__)
_HOST = "127.0.0.1"
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_TOPIC_EXISTS = 36
_compaction_warned = False
_BrokerErrors = (OSError, TimeoutError, KafkaError)


@dataclass(frozen=True)
class TopicSpec:
    """How a topic should look: partition count, and log compaction (keep last per key)."""

    partitions: int
    compacted: bool = False

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError(f"a topic needs at least one partition, not {self.partitions}")


def bootstrap_servers(url: str) -> str:
    """``kafka://a:1,b:2`` (or ``a:1,kafka://b:2``) → ``a:1,b:2`` for aiokafka."""
    hosts: list[str] = []
    for raw in url.split(","):
        scheme, sep, rest = raw.strip().partition("://")
        if sep and scheme != "kafka":
            raise ConfigError(f"broker URL {url!r} must look like kafka://host:port")
        host = (rest if sep else scheme).rstrip("/")
        if not host or ":" not in host:
            raise ConfigError(f"broker URL {url!r} must look like kafka://host:port")
        hosts.append(host)
    return ",".join(hosts)


@asynccontextmanager
async def _admin(bootstrap: str, timeout_s: float) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(bootstrap), request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await client.start()
        yield client
    finally:
        await client.close()


async def _tcp_open(servers: str, timeout_s: float) -> bool:
    """True if any bootstrap server accepts a TCP connection (avoids aiokafka log noise)."""
    for server in servers.split(","):
        host, _, port = server.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), timeout_s
            )
        except (OSError, TimeoutError):
            continue
        writer.close()
        return True
    return False


async def wait_ready(
    bootstrap: str, limit_s: float, check: Callable[[], None] | None = None
) -> None:
    """Poll until a metadata request succeeds; ``check`` may raise to give up early."""
    servers = bootstrap_servers(bootstrap)
    deadline = time.monotonic() + limit_s
    last: BaseException | None = None
    while True:
        if check is not None:
            check()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConfigError(f"Kafka broker at {servers} not ready within {limit_s:g}s: {last}")
        try:
            if not await _tcp_open(servers, min(remaining, 1.0)):
                raise ConnectionRefusedError(f"nothing accepts connections at {servers}")
            async with asyncio.timeout(min(remaining, 5.0)), _admin(servers, 5.0) as admin:
                await admin.list_topics()
            return
        except _BrokerErrors as exc:
            last = exc
        await asyncio.sleep(0.05)


async def wait_for_broker(bootstrap: str, timeout: float) -> None:  # noqa: ASYNC109
    """Wait until the broker answers a metadata request; ConfigError after ``timeout`` s.

    A deadline parameter (not ``asyncio.timeout``) so the error names the broker.
    """
    await wait_ready(bootstrap, timeout)


async def ensure_topics(
    bootstrap: str, topics: Mapping[str, TopicSpec], *, replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> None:
    """Create the topics that do not exist yet; warn about existing ones that differ.

    ``min_insync_replicas`` above 1 is set as each new topic's ``min.insync.replicas`` (1 is
    every broker's default, so nothing is sent for it)."""
    if not 1 <= min_insync_replicas <= replication_factor:
        raise ConfigError(f"min.insync.replicas {min_insync_replicas} must be between 1 and"
                          f" the replication factor {replication_factor}")
    for name in topics:
        if not _TOPIC_NAME.match(name):
            raise ConfigError(f"invalid topic name {name!r} (letters, digits, '.', '_', '-')")
    if not topics:
        return
    try:
        async with _admin(bootstrap, 10.0) as admin:
            existing = set(await admin.list_topics())
            present = [name for name in topics if name in existing]
            if present:
                await _warn_mismatches(admin, {name: topics[name] for name in present})
            missing = {n: s for n, s in topics.items() if n not in existing}
            if missing:
                await _create(admin, missing, _Placement(replication_factor, min_insync_replicas))
    except _BrokerErrors as exc:
        raise ConfigError(f"cannot create topics on {bootstrap}: {exc}") from exc


async def _warn_mismatches(admin: AIOKafkaAdminClient, topics: Mapping[str, TopicSpec]) -> None:
    for meta in await admin.describe_topics(list(topics)):
        name, have = meta["topic"], len(meta["partitions"])
        if name in topics and have != topics[name].partitions:
            _log.warning(
                "topic_partition_mismatch", topic=name, have=have, want=topics[name].partitions
            )


@dataclass(frozen=True)
class _Placement:
    """How many brokers keep each new topic, and how many must have a write (acks=all)."""

    replication: int
    min_insync: int


def _new_topic(name: str, spec: TopicSpec, placement: _Placement, *, compact: bool) -> NewTopic:
    topic_configs = {"cleanup.policy": "compact"} if spec.compacted and compact else {}
    if placement.min_insync > 1:
        topic_configs["min.insync.replicas"] = str(placement.min_insync)
    return NewTopic(name, spec.partitions, placement.replication, topic_configs=topic_configs)


async def _create(
    admin: AIOKafkaAdminClient, topics: Mapping[str, TopicSpec], placement: _Placement
) -> None:
    specs = [_new_topic(n, s, placement, compact=True) for n, s in topics.items()]
    errors = _topic_errors(await admin.create_topics(specs))
    retry = {name: topics[name] for name in errors if topics[name].compacted}
    if retry:
        plain = [_new_topic(n, s, placement, compact=False) for n, s in retry.items()]
        retried = _topic_errors(await admin.create_topics(plain))
        for name in retry:
            if name not in retried:
                _warn_compaction(name, errors.pop(name))
    if errors:
        detail = "; ".join(f"{name}: {why}" for name, why in errors.items())
        raise ConfigError(f"cannot create topics: {detail}")
    _log.info("topics_created", topics={n: s.partitions for n, s in topics.items()},
              replication=placement.replication, min_insync=placement.min_insync)


def _topic_errors(response: Any) -> dict[str, str]:
    """Topic name → error text for each topic that failed (already existing is fine)."""
    failed: dict[str, str] = {}
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        if code in (0, _TOPIC_EXISTS):
            continue
        message = entry[2] if len(entry) > 2 and entry[2] else for_code(code).description
        failed[name] = f"{for_code(code).__name__} ({code}): {message}"
    return failed


def _warn_compaction(name: str, why: str) -> None:
    global _compaction_warned
    if not _compaction_warned:
        _compaction_warned = True
        _log.warning("topic_compaction_unsupported", topic=name, error=why,
                     note="broker rejected cleanup.policy=compact; topics created without it")


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    """Delete the topics that exist. Best effort: failures are logged, never raised."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    try:
        async with _admin(bootstrap, 5.0) as admin:
            existing = set(await admin.list_topics())
            present = [name for name in wanted if name in existing]
            if present:
                response = await admin.delete_topics(present)
                for name, code, *_ in response.topic_error_codes:
                    if code:
                        _log.warning("topic_delete_failed", topic=name, error=for_code(code))
    except _BrokerErrors as exc:
        _log.warning("topic_delete_failed", topics=wanted, error=repr(exc))

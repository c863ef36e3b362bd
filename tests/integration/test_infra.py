"""The local infrastructure against real processes: tansu, redis-server, PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from hexcast.core.errors import ConfigError
from hexcast.core.kafka import TopicSpec, bootstrap_servers, delete_topics, ensure_topics, wait_for_broker
from hexcast.devstack.broker import EmbeddedBroker
from hexcast.devstack.localinfra import (
    ThrowawayPostgres,
    ThrowawayRedis,
    ensure_database,
    postgres_reachable,
    redis_reachable,
)
from hexcast.devstack.procs import free_port, port_in_use

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _local_pg(database: str) -> str:
    return LOCAL_PG.rsplit("/", 1)[0] + f"/{database}"


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker() as running:
        yield running


async def _partition_counts(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(bootstrap))
    await admin.start()
    try:
        names = await admin.list_topics()
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {meta["topic"]: len(meta["partitions"]) for meta in described}


async def _topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(bootstrap))
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    finally:
        await admin.close()
    entries = response.resources[0][4]
    return {entry[0]: entry[1] for entry in entries}


async def test_ensure_topics_creates_requested_partitions(broker: EmbeddedBroker) -> None:
    specs = {"visits": TopicSpec(3), "profiles": TopicSpec(2, compacted=True)}
    await ensure_topics(broker.url, specs)
    await ensure_topics(broker.url, specs)  # idempotent
    counts = await _partition_counts(broker.url)
    assert counts["visits"] == 3
    assert counts["profiles"] == 2
    assert (await _topic_config(broker.url, "profiles")).get("cleanup.policy") == "compact"

    await delete_topics(broker.url, ["visits", "profiles", "never-created"])
    assert "visits" not in await _partition_counts(broker.url)


async def test_ensure_topics_rejects_bad_names(broker: EmbeddedBroker) -> None:
    with pytest.raises(ConfigError, match="invalid topic name"):
        await ensure_topics(broker.url, {"no spaces": TopicSpec(1)})


async def test_produce_and_consume(broker: EmbeddedBroker) -> None:
    await ensure_topics(broker.bootstrap, {"send.otp": TopicSpec(4)})
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait("send.otp", b"hello", key=b"k1", partition=2)
    finally:
        await producer.stop()
    assert meta.partition == 2

    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    await consumer.start()
    try:
        assert consumer.partitions_for_topic("send.otp") == {0, 1, 2, 3}
        consumer.assign([TopicPartition("send.otp", 2)])
        await consumer.seek_to_beginning()
        record = await asyncio.wait_for(consumer.getone(), timeout=10)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k1", b"hello")


async def test_sync_start_stop_frees_port_and_restarts() -> None:
    broker = EmbeddedBroker()
    with broker:
        assert broker.running
        await wait_for_broker(broker.url, timeout=5)
    assert not broker.running
    assert not port_in_use(broker.port)
    with pytest.raises(ConfigError, match="not ready"):
        await wait_for_broker(broker.url, timeout=0.5)

    assert broker.start() == f"kafka://127.0.0.1:{broker.port}"  # same port again
    try:
        await ensure_topics(broker.url, {"delivery": TopicSpec(1)})
    finally:
        broker.stop()


async def test_broker_port_taken_is_config_error(broker: EmbeddedBroker) -> None:
    with pytest.raises(ConfigError, match="already in use"):
        EmbeddedBroker(broker.port).start()
    assert broker.running


async def test_broker_that_dies_reports_its_log(tmp_path: Path) -> None:
    false = shutil.which("false")
    assert false is not None
    with pytest.raises(ConfigError, match="exited with status 1"):
        await EmbeddedBroker(binary=false, log_path=tmp_path / "b.log").astart()


async def test_throwaway_redis_stop_and_restart_on_same_port() -> None:
    server = ThrowawayRedis()
    url = server.start()
    # Without a retry policy the first command on a pooled connection to the old server fails.
    retry = Retry(ExponentialBackoff(cap=0.5), 3)
    client = aioredis.Redis.from_url(url, retry=retry, retry_on_error=[RedisConnectionError])
    try:
        await client.set("k", "v")
        assert await client.ping()
        server.stop()
        assert not await redis_reachable(url)
        assert server.start() == url
        assert await client.ping()  # the client reconnects to the same port
        assert await client.get("k") is None  # no persistence
    finally:
        await client.aclose()
        server.stop()
    assert not port_in_use(server.port)


async def test_reachability_probes() -> None:
    dead = free_port()
    assert await postgres_reachable(LOCAL_PG)
    assert await postgres_reachable(_local_pg("no_such_db"))
    assert not await postgres_reachable(f"postgresql://postgres@127.0.0.1:{dead}/x")
    assert not await redis_reachable(f"redis://127.0.0.1:{dead}/0")


async def test_ensure_database_creates_once() -> None:
    name = f"hexcast_test_{uuid.uuid4().hex[:12]}"
    dsn = _local_pg(name)
    try:
        await ensure_database(dsn)
        await ensure_database(dsn)  # already there: no error
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT current_database()") == name
        await conn.close()
    finally:
        admin = await asyncpg.connect(LOCAL_PG)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


async def test_ensure_database_unreachable_is_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot connect"):
        await ensure_database(f"postgresql://postgres@127.0.0.1:{free_port()}/x")


async def test_throwaway_postgres(tmp_path: Path) -> None:
    pg = ThrowawayPostgres(tmp_path / "state", database="hexcast_tmp")
    try:
        dsn = pg.start()
        assert dsn == f"postgresql://postgres@127.0.0.1:{pg.port}/hexcast_tmp"
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT current_database()") == "hexcast_tmp"
        await conn.close()
    finally:
        pg.stop()
    assert not await postgres_reachable(dsn)
    assert not port_in_use(pg.port)
    shutil.rmtree(pg.root, ignore_errors=True)

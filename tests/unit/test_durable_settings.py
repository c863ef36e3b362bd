"""Durable production settings: min ISR never above the replication factor, topics created with
both, and producers that wait for every in-sync replica and are idempotent when told to."""

from __future__ import annotations

import pytest

from hexcast.core.errors import ConfigError
from hexcast.core.faustapp import create_faust_app
from hexcast.core.kafka import TopicSpec, _new_topic, _Placement, ensure_topics
from hexcast.core.settings import load_settings


def test_min_insync_replicas_may_not_exceed_the_replication_factor() -> None:
    settings = load_settings(topic_replication_factor=3, topic_min_insync_replicas=2)
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas) == (3, 2)
    assert load_settings().topic_replication_factor == load_settings().topic_min_insync_replicas == 1
    with pytest.raises(ConfigError, match="HEXCAST_TOPIC_MIN_INSYNC_REPLICAS"):
        load_settings(topic_replication_factor=2, topic_min_insync_replicas=3)
    with pytest.raises(ConfigError, match="HEXCAST_TOPIC_REPLICATION_FACTOR"):
        load_settings(topic_replication_factor=0)


def test_new_topics_carry_replication_and_min_insync_replicas() -> None:
    durable = _new_topic("t", TopicSpec(4, compacted=True), _Placement(3, 2), compact=True)
    assert (durable.num_partitions, durable.replication_factor) == (4, 3)
    assert durable.topic_configs == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    retried = _new_topic("t", TopicSpec(4, compacted=True), _Placement(3, 2), compact=False)
    assert retried.topic_configs == {"min.insync.replicas": "2"}  # only compaction is dropped
    local = _new_topic("t", TopicSpec(1), _Placement(1, 1), compact=True)
    assert (local.replication_factor, local.topic_configs) == (1, {})  # nothing the broker lacks


async def test_ensure_topics_refuses_more_in_sync_replicas_than_replicas() -> None:
    with pytest.raises(ConfigError, match="min.insync.replicas 2"):  # before any connection
        await ensure_topics("kafka://127.0.0.1:1", {"t": TopicSpec(1)}, min_insync_replicas=2)


@pytest.mark.parametrize("idempotent", [True, False])
async def test_faust_producers_wait_for_all_replicas(tmp_path: object, idempotent: bool) -> None:
    settings = load_settings(broker_url="kafka://127.0.0.1:1", state_dir=str(tmp_path),
                             kafka_idempotent_producer=idempotent)
    producer = create_faust_app(settings, role="unit").producer._new_producer()  # not started
    try:
        assert producer._sender._acks == -1
        assert (producer._txn_manager is not None) is idempotent
    finally:
        await producer.stop()

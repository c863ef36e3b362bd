"""Kafka consumer lag of this deployment's consumer groups, as a Prometheus gauge.

``hexcast_kafka_consumer_lag{group,topic,partition}``: a partition's end offset minus the
offset the group committed on it, for every consumer group whose id starts with
``<app_id>-`` (each faust process role is one: ``hexcast-matcher``, ``hexcast-sender-bulk``...)
and every partition of each of hexcast's topics (:func:`hexcast.core.topics.topic_specs`) the
group has committed on; a partition of such a topic it has not committed on yet counts from the
partition's start (faust reads a new partition from the earliest offset). One process exports
it (the scheduler), refreshed every ``LAG_REFRESH_S`` by :func:`hexcast.core.metrics.refresh_every`.

Each refresh asks what the embedded broker (tansu) answers too: ListGroups, a Metadata request
for every topic (partitions, without naming one: tansu creates a topic it is asked about by
name), ListOffsets (end and start offsets, through a consumer without a group) and, per group,
OffsetFetch naming the partitions. OffsetFetch with no partitions (KIP-88, "every partition
the group committed") is not used: tansu answers it with a response aiokafka cannot parse, and
the connection is dropped; naming the partitions works on tansu and Kafka alike (a partition
the group never committed on comes back as ``-1``). Nor can the groups' subscriptions be read:
tansu's DescribeGroups answers members without their metadata or assignment, so a group is taken
to read the topics it has committed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

from hexcast.core.kafka import bootstrap_servers
from hexcast.core.metrics import RefreshedGauge
from hexcast.core.settings import Settings
from hexcast.core.topics import topic_specs

__all__ = ["CONSUMER_LAG", "LAG_REFRESH_S", "ConsumerLag", "lag_of", "our_groups"]

LAG_REFRESH_S = 10.0
_TIMEOUT_S = 30.0  # a refresh that takes longer is abandoned (the gauge keeps its values)
CONSUMER_LAG = Gauge("hexcast_kafka_consumer_lag",
                     "Messages of a partition a consumer group has not committed yet"
                     " (end offset - committed offset)", ["group", "topic", "partition"])

Partition = tuple[str, int]


def our_groups(groups: Iterable[str], app_id: str) -> list[str]:
    """The consumer groups of this deployment: faust names each ``<app_id>-<role>``."""
    return sorted(g for g in set(groups) if g.startswith(f"{app_id}-"))


def lag_of(committed: Mapping[Partition, int], ends: Mapping[Partition, int],
           starts: Mapping[Partition, int]) -> dict[Partition, int]:
    """How far behind a group is on each partition (``ends``) of the topics it committed on:
    end minus its committed offset, or minus the partition's start where it has committed
    nothing yet (faust reads a new partition from the earliest offset). Never negative: a
    commit past the end, of a topic recreated, counts as caught up."""
    read = {topic for (topic, _), offset in committed.items() if offset >= 0}
    found = {}
    for tp, end in ends.items():
        if tp[0] in read:
            offset = committed.get(tp, -1)
            found[tp] = max(end - (offset if offset >= 0 else starts.get(tp, 0)), 0)
    return found


def _by_partition(offsets: Mapping[TopicPartition, int]) -> dict[Partition, int]:
    return {(tp.topic, tp.partition): n for tp, n in offsets.items()}


class ConsumerLag:
    """Reads the lag of this deployment's groups; keeps an admin client and a group-less
    consumer between refreshes (both are made again after a failed one)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = set(topic_specs(settings))
        self._gauge = RefreshedGauge(CONSUMER_LAG)
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            servers = bootstrap_servers(self.settings.bootstrap_servers)
            self._admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=10_000)
            self._consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None,
                                              enable_auto_commit=False, request_timeout_ms=10_000)
            await self._admin.start()
            await self._consumer.start()
        return self._admin, self._consumer

    async def _partitions(self, admin: AIOKafkaAdminClient) -> list[TopicPartition]:
        """Every partition of hexcast's topics that exist (one metadata request for all)."""
        return [TopicPartition(t["topic"], p["partition"]) for t in await admin.describe_topics()
                if t["topic"] in self.topics for p in t["partitions"]]

    async def read(self) -> dict[tuple[str, str, int], int]:
        """(group, topic, partition) → lag, for every partition of the topics a group reads."""
        admin, consumer = await self._clients()
        groups = our_groups((g[0] for g in await admin.list_consumer_groups()), self.settings.app_id)
        partitions = await self._partitions(admin) if groups else []
        if not partitions:
            return {}
        ends = _by_partition(await consumer.end_offsets(partitions))
        starts = _by_partition(await consumer.beginning_offsets(partitions))
        found: dict[tuple[str, str, int], int] = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
            committed = {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}
            found.update({(group, *tp): n for tp, n in lag_of(committed, ends, starts).items()})
        return found

    async def refresh(self) -> None:
        """Set the gauge from :meth:`read`; after a failure the clients are made again."""
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                found = await self.read()
        except BaseException:
            await self.close()
            raise
        self._gauge.replace({(g, t, str(p)): float(n) for (g, t, p), n in found.items()})

    async def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

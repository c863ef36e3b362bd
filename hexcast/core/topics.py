"""The topics hexcast uses, with their partition counts, compaction and replication."""

from __future__ import annotations

from hexcast.core.kafka import TopicSpec, ensure_topics
from hexcast.core.settings import Settings

__all__ = ["create_topics", "topic_specs"]


def topic_specs(settings: Settings) -> dict[str, TopicSpec]:
    """Real topic name → spec. Keys co-partition visits and profiles by ``<tenant>:<user>``."""
    n = settings.topic_partitions
    logical = {
        "visits": TopicSpec(partitions=n),
        "catalog": TopicSpec(partitions=1, compacted=True),
        "profiles": TopicSpec(partitions=n, compacted=True),
        "send.otp": TopicSpec(partitions=n),
        "send.transactional": TopicSpec(partitions=n),
        "send.geo": TopicSpec(partitions=n),
        "send.bulk": TopicSpec(partitions=n),
        "send.dlq": TopicSpec(partitions=1),
        "delivery": TopicSpec(partitions=n),
    }
    return {settings.topic(name): spec for name, spec in logical.items()}


async def create_topics(settings: Settings) -> None:
    """Create the missing topics with the configured replication and ``min.insync.replicas``."""
    await ensure_topics(settings.bootstrap_servers, topic_specs(settings),
                        replication_factor=settings.topic_replication_factor,
                        min_insync_replicas=settings.topic_min_insync_replicas)

"""What a consumer needs that aiokafka has no public call for: a metadata refresh, the partition
counts of some topics, a group's committed offsets for some partitions, and whether this member
still belongs to its group's current generation. aiokafka's private parts are used here, and
only here (with `reader.py` and `fetchwait.py`), so that an upgrade that breaks them breaks one
package, whose tests say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Ask the cluster for fresh metadata now (a topic just created, partitions added)."""
    await consumer._client.force_metadata_update()


async def partition_counts(
    consumer: AIOKafkaConsumer, topics: Sequence[str]
) -> dict[str, int] | None:
    """How many partitions each of `topics` has now (0: not there), asked of the cluster
    without touching the consumer's own metadata; None when no broker answered."""
    try:
        cluster = await consumer._client.fetch_all_metadata()
    except KafkaError:
        return None
    return {topic: len(cluster.partitions_for_topic(topic) or ()) for topic in topics}


async def committed_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, Any]:
    """The group's committed offset (an `OffsetAndMetadata`, offset -1: none) of each of
    `partitions`, in one request; `consumer.committed` asks one partition at a time."""
    if not partitions:
        return {}
    found: dict[TopicPartition, Any] = await consumer._coordinator.fetch_committed_offsets(
        list(partitions)
    )
    return found


async def still_member(consumer: AIOKafkaConsumer) -> bool:
    """Whether the group still counts this member in its current generation, with no
    rebalance to join: one heartbeat, answered."""
    coordinator = consumer._coordinator
    subscription = consumer._subscription.subscription
    if coordinator is None or subscription is None:
        return False
    try:
        answered = await coordinator._do_heartbeat()
    except KafkaError:
        return False
    return bool(answered) and not coordinator.need_rejoin(subscription)

"""Every topic, its partitions, cleanup policy and retention, in one place.

Names are logical (`pipeline.tasks`); `Topics(prefix)` gives the physical names, so that a test
or a second environment can share a cluster without sharing topics.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from enum import StrEnum

from ytmaker_shared.events.codec import DecodeError
from ytmaker_shared.stages import Stage


class Topic(StrEnum):
    TASKS = "pipeline.tasks"
    SCRIPT = "pipeline.script"
    ASSETS = "pipeline.assets"
    RENDER = "pipeline.render"
    UPLOAD = "pipeline.upload"
    CONTROL = "pipeline.control"
    PROGRESS_UPDATES = "progress.updates"
    PROGRESS_STATE = "progress.state"
    PROGRESS_ETA = "progress.eta"
    DLQ = "pipeline.dlq"


#: The topics that the progress service folds: every pipeline topic but the dead letters.
PIPELINE_TOPICS: tuple[Topic, ...] = (
    Topic.TASKS,
    Topic.SCRIPT,
    Topic.ASSETS,
    Topic.RENDER,
    Topic.UPLOAD,
    Topic.CONTROL,
)

#: The topic each stage writes its lifecycle events to.
STAGE_TOPIC: dict[Stage, Topic] = {
    Stage.SCRIPT: Topic.SCRIPT,
    Stage.IMAGES: Topic.ASSETS,
    Stage.AUDIO: Topic.ASSETS,
    Stage.AVATARS: Topic.ASSETS,
    Stage.RENDER: Topic.RENDER,
    Stage.UPLOAD: Topic.UPLOAD,
}

#: The services that consume each topic (every topic is named: a topic that gains a consumer
#: gains it here, and the reliability suite feeds it hostile records). Consumer groups
#: dead-letter what they cannot decode; group-less readers count and skip it.
CONSUMED_BY: dict[Topic, frozenset[str]] = {
    Topic.TASKS: frozenset({"script", "progress"}),
    Topic.SCRIPT: frozenset({"assets", "progress"}),
    Topic.ASSETS: frozenset({"render", "progress"}),
    Topic.RENDER: frozenset({"upload", "progress"}),
    Topic.UPLOAD: frozenset({"progress"}),
    Topic.CONTROL: frozenset({"script", "assets", "render", "upload", "progress"}),
    Topic.PROGRESS_UPDATES: frozenset({"progress", "gateway"}),
    Topic.PROGRESS_STATE: frozenset({"progress"}),
    Topic.PROGRESS_ETA: frozenset({"progress"}),
    Topic.DLQ: frozenset(),  # operators read it (`ytmaker dlq`)
}


def task_partition(task_id: str, partitions: int) -> int:
    """The partition, of `partitions`, that a record keyed by `task_id` goes to.

    Every ytmaker producer keys a record by its task id and partitions it as Kafka's default
    partitioner does (`key_partition`). Every topic the fold reads or writes has the same
    count (checked at its start), so a task lives in the same partition number of each: its
    lane, the partition of `progress.updates` holding its updates, the one by whose offsets
    readers order them and resume. A reader that trusts nothing on a topic checks a record's
    partition against it."""
    return key_partition(task_id.encode(), partitions)


#: Keys up to this long are cached (a task id is 36 bytes); a longer one, which no ytmaker
#: producer writes but a hostile record may carry, is hashed each time and kept nowhere.
LONGEST_CACHED_KEY = 64


def key_partition(key: bytes, partitions: int) -> int:
    """The partition, of `partitions`, of a record keyed by `key`: Kafka's default
    partitioner, murmur2 of the key, sign bit cleared, modulo the partition count (aiokafka's
    `DefaultPartitioner`, as the Java client's).

    Cached: murmur2 in Python takes ~5 µs a key, and a task has dozens of records."""
    if len(key) > LONGEST_CACHED_KEY:
        return _murmur2_partition(key, partitions)
    return _cached_partition(key, partitions)


def _murmur2_partition(key: bytes, partitions: int) -> int:
    from aiokafka.partitioner import murmur2  # the producers' own; aiokafka only where used

    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


_cached_partition = functools.lru_cache(maxsize=16_384)(_murmur2_partition)


def partition_by_key(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """A producer's partitioner (aiokafka's `partitioner=`): `DefaultPartitioner` with its
    murmur2 cached (`key_partition`); a record without a key goes to a random partition,
    an available one if any."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[key_partition(key, len(all_partitions))]


def misplaced(task_id: str, partition: int, partitions: int) -> DecodeError | None:
    """None when a record of `task_id` read from `partition` (of its topic's `partitions`) is
    in its task's partition; otherwise the `wrong_partition` error a reader skips or
    dead-letters it with (decision 0123)."""
    home = task_partition(task_id, partitions)
    if home == partition:
        return None
    return DecodeError(
        "wrong_partition",
        f"a record of task {task_id!r}, whose partition is {home} of {partitions}, "
        f"in partition {partition}",
    )


_WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is created. `retention_ms=-1` keeps messages for ever."""

    topic: Topic
    cleanup_policy: str = "delete"
    retention_ms: int = 4 * _WEEK_MS
    extra: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            **self.extra,
        }


TOPIC_SPECS: tuple[TopicSpec, ...] = (
    *(TopicSpec(t) for t in PIPELINE_TOPICS),
    TopicSpec(Topic.PROGRESS_UPDATES),
    # Time-left estimates, keyed by task_id: an input of the progress fold like the pipeline
    # topics (services/progress, docs/decisions/0024-eta-window.md).
    TopicSpec(Topic.PROGRESS_ETA),
    TopicSpec(
        Topic.PROGRESS_STATE,
        cleanup_policy="compact",
        retention_ms=-1,
        extra={"min.cleanable.dirty.ratio": "0.1", "segment.ms": str(3600 * 1000)},
    ),
    TopicSpec(Topic.DLQ, retention_ms=-1),
)


@dataclass(frozen=True)
class Topics:
    """Physical topic names: the logical name behind an optional prefix."""

    prefix: str = ""

    def name(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.value}"

    def logical(self, name: str) -> Topic:
        """The logical topic of a physical name; raises ValueError for a foreign topic."""
        if not name.startswith(self.prefix):
            raise ValueError(f"topic {name!r} is not under prefix {self.prefix!r}")
        return Topic(name[len(self.prefix) :])

    def all(self) -> list[str]:
        return [self.name(spec.topic) for spec in TOPIC_SPECS]

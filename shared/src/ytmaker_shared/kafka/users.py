"""What each part of ytmaker may do on the log: one Kafka user per service, and its ACLs
(decision 0122). `scripts/k8s_kafka.py` writes them as Strimzi KafkaUsers
(deploy/k8s/base/kafka/users.yaml); the manifests' run test grants them on a broker that
enforces them and makes a video, so that a missing ACL fails it.

Names are the production ones (no topic prefix): consumer groups are the services' names
(`StageWorker`'s group), the fold's is `progress-fold` and its transactional ids begin with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ytmaker_shared.topics import PIPELINE_TOPICS, TOPIC_SPECS, Topic

#: The fold's consumer group, and the stem of its lanes' transactional ids
#: (`ProgressSettings.progress_group_id`'s default).
FOLD_GROUP = "progress-fold"
#: The stages' consumer groups (`StageWorker`: the service's name).
STAGE_GROUPS = ("script", "assets", "render", "upload")


@dataclass(frozen=True)
class KafkaAccess:
    """A service's ACLs: the topics it reads and writes (each also described), those it only
    describes (their ends), its consumer group, the prefix of its transactional ids, and the
    groups whose offsets it reads."""

    reads: frozenset[Topic] = frozenset()
    writes: frozenset[Topic] = frozenset()
    describes: frozenset[Topic] = frozenset()
    group: str | None = None
    transactional_ids: str | None = None  # a prefix
    described_groups: tuple[str, ...] = ()
    configs: bool = False  # reads its topics' configuration too

    def acls(self) -> list[dict[str, Any]]:
        """The ACLs as a Strimzi KafkaUser's `spec.authorization.acls`."""
        acls = []
        for topic in sorted({*self.reads, *self.writes, *self.describes}):
            operations = [
                *(["Read"] * (topic in self.reads)),
                *(["Write"] * (topic in self.writes)),
                "Describe",
                *(["DescribeConfigs"] * self.configs),
            ]
            acls.append(_acl("topic", topic.value, operations))
        if self.group is not None:
            acls.append(_acl("group", self.group, ["Read", "Describe"]))
        acls += [_acl("group", group, ["Describe"]) for group in self.described_groups]
        if self.transactional_ids is not None:
            acls.append(
                _acl("transactionalId", self.transactional_ids, ["Write", "Describe"], "prefix")
            )
        return acls


def _acl(kind: str, name: str, operations: list[str], pattern: str = "literal") -> dict[str, Any]:
    return {
        "resource": {"type": kind, "name": name, "patternType": pattern},
        "operations": operations,
    }


def _stage(reads: set[Topic], writes: Topic, group: str) -> KafkaAccess:
    """A stage: its input and the control topic in, its own topic, the task's end
    (`task.completed`, `task.failed`) and the dead letters out."""
    return KafkaAccess(
        reads=frozenset({*reads, Topic.CONTROL}),
        writes=frozenset({writes, Topic.TASKS, Topic.DLQ}),
        group=group,
    )


#: Kafka user → what it may do. The users are named `kafka-<part>`.
KAFKA_USERS: dict[str, KafkaAccess] = {
    "kafka-script": _stage({Topic.TASKS}, Topic.SCRIPT, "script"),
    "kafka-assets": _stage({Topic.SCRIPT}, Topic.ASSETS, "assets"),
    "kafka-render": _stage({Topic.ASSETS}, Topic.RENDER, "render"),
    "kafka-upload": _stage({Topic.RENDER, Topic.TASKS}, Topic.UPLOAD, "upload"),
    # every pipeline topic and the estimates in, the updates and checkpoints out, in
    # transactions; it restores from its own output
    "kafka-progress-fold": KafkaAccess(
        reads=frozenset(
            {*PIPELINE_TOPICS, Topic.PROGRESS_ETA, Topic.PROGRESS_UPDATES, Topic.PROGRESS_STATE}
        ),
        writes=frozenset({Topic.PROGRESS_UPDATES, Topic.PROGRESS_STATE, Topic.DLQ}),
        group=FOLD_GROUP,
        transactional_ids=FOLD_GROUP,
    ),
    # the read model's sink (updates and task requests), the estimates it makes, and the
    # stall watch's failures and cancels
    "kafka-progress": KafkaAccess(
        reads=frozenset({Topic.PROGRESS_UPDATES, Topic.TASKS}),
        writes=frozenset({Topic.PROGRESS_ETA, Topic.TASKS, Topic.CONTROL}),
    ),
    # the fan-out reads the updates; commands start and control runs
    "kafka-gateway": KafkaAccess(
        reads=frozenset({Topic.PROGRESS_UPDATES}),
        writes=frozenset({Topic.TASKS, Topic.CONTROL}),
    ),
    # the audit Job (deploy/k8s/jobs): reads what the read side reads, writes nothing
    "kafka-audit": KafkaAccess(reads=frozenset({Topic.PROGRESS_UPDATES, Topic.TASKS})),
    # KEDA's Kafka scaler: the stages' input topics' ends and their groups' offsets
    "kafka-autoscaler": KafkaAccess(
        describes=frozenset({Topic.TASKS, Topic.SCRIPT, Topic.ASSETS, Topic.RENDER}),
        described_groups=STAGE_GROUPS,
    ),
    # the operator's command line (`ytmaker replay`, `dlq`, `topics`): reads everything,
    # requeues a dead letter to the topic it came from, looks at every group's lag
    "kafka-operator": KafkaAccess(
        reads=frozenset(spec.topic for spec in TOPIC_SPECS),
        writes=frozenset(PIPELINE_TOPICS),
        described_groups=(*STAGE_GROUPS, FOLD_GROUP),
        configs=True,
    ),
}

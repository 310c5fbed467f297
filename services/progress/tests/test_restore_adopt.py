"""The restore's adoption of one update (`restore._adopt`): since decision 0109 only the last
update of a batch carries the fold's positions, so they are taken from the header whatever the
value, and an update without the header leaves them as they were; an update read outside its
task's partition is not its task's state (decision 0123)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from tests.support.gateway import make_update
from ytmaker_progress import SERVICE
from ytmaker_progress.lanes import Lane
from ytmaker_progress.positions import POSITIONS_HEADER, encode_positions, logical_names
from ytmaker_progress.restore import _adopt
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic, task_partition

SETTINGS = ProgressSettings(topic_prefix="adopt.")
UPDATES = SETTINGS.topics.name(Topic.PROGRESS_UPDATES)


def record(value: bytes, headers: list[tuple[str, bytes]], offset: int, partition: int = 0) -> Any:
    return ConsumerRecord(UPDATES, partition, offset, 0, 0, b"k", value, None, 1, 0, headers)


def test_positions_come_from_the_header_whatever_the_value() -> None:
    lane = Lane(0, producers=(None, None))  # type: ignore[arg-type]
    names = logical_names(SETTINGS.topics)
    wanted = {
        TopicPartition(SETTINGS.topics.name(topic), 0): 10 + n
        for n, topic in enumerate([*PIPELINE_TOPICS, Topic.PROGRESS_ETA])
    }
    header = [(POSITIONS_HEADER, encode_positions(wanted, names))]

    assert _adopt(lane, record(b"{not an update", header, 0), SETTINGS, 1) == 0
    assert lane.positions == wanted and lane.states == {}

    update = make_update("task-1")
    assert _adopt(lane, record(update.model_dump_json().encode(), [], 1), SETTINGS, 1) == 1
    assert lane.positions == wanted  # no header: the positions stay
    assert lane.states["task-1"].recent_ids[-1] == update.event_id


def _skipped(reason: str) -> float:
    labels = {"service": SERVICE, "topic": UPDATES, "reason": reason}
    return REGISTRY.get_sample_value("ytmaker_records_skipped_total", labels) or 0.0


def test_an_update_outside_its_tasks_partition_is_not_adopted() -> None:
    """Adopted, it would be a second state of its task in a lane that is not the task's, and
    the next checkpoint would write it to that lane's partition of `progress.state`."""
    home = task_partition("t-victim", 6)
    wrong = (home + 1) % 6
    value = make_update("t-victim", progress=50.0).model_dump_json().encode()
    lane = Lane(wrong, producers=(None, None))  # type: ignore[arg-type]
    wanted = {TopicPartition(SETTINGS.topics.name(Topic.TASKS), wrong): 7}
    header = [(POSITIONS_HEADER, encode_positions(wanted, logical_names(SETTINGS.topics)))]
    before = _skipped("wrong_partition")

    assert _adopt(lane, record(value, header, 3, wrong), SETTINGS, 6) == 0
    assert (lane.states, lane.touched) == ({}, {})
    assert lane.positions == wanted  # the lane's own positions, whatever the update
    assert _skipped("wrong_partition") == before + 1

    own = Lane(home, producers=(None, None))  # type: ignore[arg-type]
    assert _adopt(own, record(value, [], 3, home), SETTINGS, 6) == 1
    assert own.states["t-victim"].task.progress == 50.0

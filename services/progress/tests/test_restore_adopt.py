"""The restore's adoption of one update (`restore._adopt`): since decision 0109 only the last
update of a batch carries the fold's positions, so they are taken from the header whatever the
value, and an update without the header leaves them as they were."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from tests.support.gateway import make_update
from ytmaker_progress.lanes import Lane
from ytmaker_progress.positions import POSITIONS_HEADER, encode_positions, logical_names
from ytmaker_progress.restore import _adopt
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic

SETTINGS = ProgressSettings(topic_prefix="adopt.")


def record(value: bytes, headers: list[tuple[str, bytes]], offset: int) -> Any:
    topic = SETTINGS.topics.name(Topic.PROGRESS_UPDATES)
    return ConsumerRecord(topic, 0, offset, 0, 0, b"k", value, None, 1, len(value), headers)


def test_positions_come_from_the_header_whatever_the_value() -> None:
    lane = Lane(0, producers=(None, None))  # type: ignore[arg-type]
    names = logical_names(SETTINGS.topics)
    wanted = {
        TopicPartition(SETTINGS.topics.name(topic), 0): 10 + n
        for n, topic in enumerate([*PIPELINE_TOPICS, Topic.PROGRESS_ETA])
    }
    header = [(POSITIONS_HEADER, encode_positions(wanted, names))]

    assert _adopt(lane, record(b"{not an update", header, 0), SETTINGS) == 0
    assert lane.positions == wanted and lane.states == {}

    update = make_update("task-1")
    assert _adopt(lane, record(update.model_dump_json().encode(), [], 1), SETTINGS) == 1
    assert lane.positions == wanted  # no header: the positions stay
    assert lane.states["task-1"].recent_ids[-1] == update.event_id

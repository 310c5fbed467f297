"""Where a lane stands in its inputs, written with what it folded (decision 0038).

- The last update of every batch the fold writes to `progress.updates` carries, in its
  `ytmaker.fold.positions` header, the lane's positions right after the event that made it:
  the next offset to fold of each input partition of the lane, by logical topic name (the
  lane's partition number is the update's own). The broker appends a batch whole, so the last
  update in the log always has one: a restore that adopts the updates resumes exactly after
  the last one's event (decision 0109; until then every update carried the header).
- Each checkpoint of the lane (a transaction on `progress.state`) ends with a checkpoint record:
  the positions at that moment (events that made no update included) and `updates_end`, the
  offset of `progress.updates` up to which the checkpoint's states account for every update.
  Its key is longer than any task id may be (at most 64 characters), so compaction never mixes
  it with a task's state; its header tells readers of `progress.state` that it is not a state.
  Checkpoints written before this design hold the positions alone (all their updates were
  committed with them): they are read as `updates_end = None`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import orjson
from aiokafka import TopicPartition

from ytmaker_progress.records import Headers
from ytmaker_shared.events import decode_with
from ytmaker_shared.events.envelope import TASK_ID_MAX_LENGTH
from ytmaker_shared.kafka.batches import Ending
from ytmaker_shared.topics import Topic, Topics

POSITIONS_HEADER = "ytmaker.fold.positions"


@dataclass(frozen=True)
class Checkpoint:
    positions: dict[TopicPartition, int]
    #: Updates below this offset are accounted for by the states before the checkpoint;
    #: None for a checkpoint of the transaction-per-batch design (nothing to adopt).
    updates_end: int | None


def positions_key(lane: int) -> bytes:
    """The record key of lane `lane`'s checkpoints: longer than any task id, by design."""
    return f"ytmaker.fold.input-positions.lane-{lane}".ljust(TASK_ID_MAX_LENGTH + 1, ".").encode()


def is_positions(headers: Headers) -> bool:
    return any(key == POSITIONS_HEADER for key, _ in headers)


def logical_names(topics: Topics) -> dict[str, str]:
    """Physical topic name → logical name, of every topic (for `encode_positions`)."""
    return {topics.name(topic): topic.value for topic in Topic}


def encode_positions(positions: Mapping[TopicPartition, int], names: Mapping[str, str]) -> bytes:
    """The positions header's value: next offset per input, by logical topic name (`names`
    from `logical_names`)."""
    return orjson.dumps({names[tp.topic]: offset for tp, offset in positions.items()})


def positions_header(positions: Mapping[TopicPartition, int], names: Mapping[str, str]) -> Ending:
    """An update's ending headers (`PartitionWriter.write`): the positions as they are now,
    encoded only if the update ends its batch."""
    return partial(_header, dict(positions), names)


def _header(positions: Mapping[TopicPartition, int], names: Mapping[str, str]) -> Headers:
    return [(POSITIONS_HEADER, encode_positions(positions, names))]


def decode_positions(value: bytes, topics: Topics, lane: int) -> dict[TopicPartition, int]:
    """The positions of an update's header; raises DecodeError."""
    return decode_with(lambda raw: _offsets(raw, topics, lane), value)


def encode_checkpoint(
    positions: Mapping[TopicPartition, int], updates_end: int, topics: Topics
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of a checkpoint record."""
    inputs = {topics.logical(tp.topic).value: offset for tp, offset in positions.items()}
    value = orjson.dumps({"inputs": inputs, "updates_end": updates_end})
    return value, [(POSITIONS_HEADER, b"2")]


def decode_checkpoint(value: bytes | None, topics: Topics, lane: int) -> Checkpoint:
    """A checkpoint record, of this design or the one before; raises DecodeError."""
    return decode_with(lambda raw: _checkpoint(raw, topics, lane), value)


def _checkpoint(raw: dict[str, object], topics: Topics, lane: int) -> Checkpoint:
    if "inputs" not in raw:  # before 0038: {"<physical topic>/<partition>": offset}
        old = {}
        for name, offset in raw.items():
            topic, partition = name.rsplit("/", 1)
            old[TopicPartition(topic, int(partition))] = _offset(offset)
        return Checkpoint(old, None)
    inputs = raw["inputs"]
    if not isinstance(inputs, dict):
        raise ValueError("inputs is not an object")
    return Checkpoint(_offsets(inputs, topics, lane), _offset(raw["updates_end"]))


def _offsets(raw: dict[str, object], topics: Topics, lane: int) -> dict[TopicPartition, int]:
    return {
        TopicPartition(topics.name(Topic(name)), lane): _offset(offset)
        for name, offset in raw.items()
    }


def _offset(value: object) -> int:
    if not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"{value!r} is not an offset")
    return value

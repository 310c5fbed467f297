"""A lane's input positions, written to `progress.state` in the lane's own transactions.

The fold commits where it stands in its inputs together with what it wrote, in one Kafka
transaction, as a record of the compacted `progress.state` (docs/decisions/0029): the restore
that reads a lane's states then gives, from the same committed transactions, where to resume.
Its key is longer than any task id may be (at most 64 characters), so compaction never mixes
it with a task's state; its header tells readers of `progress.state` that it is not a state.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiokafka import TopicPartition

from ytmaker_progress.records import Headers
from ytmaker_shared.events import decode_with
from ytmaker_shared.events.envelope import TASK_ID_MAX_LENGTH

POSITIONS_HEADER = "ytmaker.fold.positions"


def positions_key(lane: int) -> bytes:
    """The record key of lane `lane`'s positions: longer than any task id, by design."""
    return f"ytmaker.fold.input-positions.lane-{lane}".ljust(TASK_ID_MAX_LENGTH + 1, ".").encode()


def is_positions(headers: Headers) -> bool:
    return any(key == POSITIONS_HEADER for key, _ in headers)


def encode_positions(
    positions: Mapping[TopicPartition, int],
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of a positions record: the next offset to fold, per input."""
    value = {f"{tp.topic}/{tp.partition}": offset for tp, offset in positions.items()}
    return orjson.dumps(value), [(POSITIONS_HEADER, b"1")]


def decode_positions(value: bytes | None) -> dict[TopicPartition, int]:
    """Raises DecodeError for anything but a positions record as `encode_positions` writes it."""
    return decode_with(_positions, value)


def _positions(raw: dict[str, object]) -> dict[TopicPartition, int]:
    out = {}
    for name, offset in raw.items():
        topic, partition = name.rsplit("/", 1)
        if not isinstance(offset, int) or not 0 <= offset < 2**63:
            raise ValueError(f"{name}: {offset!r} is not an offset")
        out[TopicPartition(topic, int(partition))] = offset
    return out

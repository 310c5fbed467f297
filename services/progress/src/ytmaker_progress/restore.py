"""A lane's state, from the log, when it is assigned or after a failed write (decision 0038).

Run it after the lane's producer has fenced any zombie (its `InitProducerId` aborts the
zombie's open transaction and makes the broker refuse its writes), so the log holds all that
will ever be written for the lane before this owner writes:

1. `progress.state` of the lane to its end, read_committed: the states of its tasks, the
   markers of finished ones, and the latest checkpoint (positions, `updates_end`). A finished
   task's marker counts its age from its record's time, so that a restart does not make it
   young again; one past `progress_marker_retention_s` goes, and its record with it (decision
   0100). A state without a task id, or of a task whose partition is another (a hostile
   writer), is skipped, counted (decision 0123).
2. `progress.updates` of the lane from the checkpoint's `updates_end` to its end,
   read_uncommitted: the updates written after the checkpoint, by an owner that did not live
   to commit them, are adopted: each is its task's state, and the last one's positions header
   says where to resume (the last update of every batch carries one, and the broker appends
   batches whole). Clients have seen them; folding their events again would repeat them.
   An update of a task whose partition is another (a hostile writer) is skipped, counted: it
   is not the task's state in this lane (decision 0123).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Literal

from aiokafka import TopicPartition

from ytmaker_progress import SERVICE
from ytmaker_progress.fold import DEDUPE_WINDOW
from ytmaker_progress.folded import Folded, Task
from ytmaker_progress.lanes import Lane
from ytmaker_progress.positions import (
    POSITIONS_HEADER,
    Checkpoint,
    decode_checkpoint,
    decode_positions,
    is_positions,
)
from ytmaker_progress.records import decode_marker, decode_state, is_marker
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import DecodeError, decode_model
from ytmaker_shared.kafka.reader import LogReader, Record
from ytmaker_shared.kafka.skipped import skip_record
from ytmaker_shared.progress import ProgressUpdate
from ytmaker_shared.topics import Topic, misplaced

log = logging.getLogger(__name__)

Isolation = Literal["read_committed", "read_uncommitted"]


async def restore(settings: ProgressSettings, lanes: Iterable[Lane]) -> None:
    """Fill every lane of `lanes` from the log (see the module docstring)."""
    by_number = {lane.number: lane for lane in lanes}
    if not by_number:
        return
    for lane in by_number.values():
        lane.forget()
    checkpoints = await _read_states(settings, by_number)
    for lane in by_number.values():  # markers past their retention go, as in a running lane
        lane.finished = dict(sorted(lane.finished.items(), key=lambda item: item[1]))
        lane.evict(
            time.monotonic(),
            settings.progress_evict_after_s,
            settings.progress_marker_retention_s,
        )
    await _adopt_updates(settings, by_number, checkpoints)


async def _read_states(
    settings: ProgressSettings, lanes: dict[int, Lane]
) -> dict[int, Checkpoint | None]:
    """Each task's last record decides (decision 0100): the others are read, not decoded (the
    topic's open segment holds every checkpoint's states since it rolled, a state per task
    and checkpoint). A task whose last record cannot be decoded is read again record by
    record, so that its last good state counts, as it would in a topic read in order."""
    topic = settings.topics.name(Topic.PROGRESS_STATE)
    checkpoints: dict[int, Checkpoint | None] = dict.fromkeys(lanes)
    last: dict[tuple[int, bytes | None], Record] = {}
    async with _reader(settings, "read_committed") as reader:
        partitions = len(await reader.partitions(topic))
        tps = await reader.assign(TopicPartition(topic, n) for n in lanes)
        await reader.seek_to_beginning(tps)
        async for record in reader.to_the_end(tps):
            if is_positions(record.headers):
                lane = lanes[record.partition]
                try:
                    checkpoints[lane.number] = decode_checkpoint(
                        record.value, settings.topics, lane.number
                    )
                except DecodeError as exc:
                    skip_record(SERVICE, record, exc)
            elif error := _not_the_lanes(record, partitions):
                skip_record(SERVICE, record, error)
            else:
                last[record.partition, record.key] = record
        unreadable = {
            (record.partition, record.key)
            for record in last.values()
            if not _restore_state(lanes[record.partition], record, report=False)
        }
        if unreadable:
            await reader.seek_to_beginning(tps)
            async for record in reader.to_the_end(tps):
                if (record.partition, record.key) in unreadable:
                    _restore_state(lanes[record.partition], record)
    return checkpoints


def _not_the_lanes(record: Record, partitions: int) -> DecodeError | None:
    """Why a state record (of a topic of `partitions`) is not one of its lane's tasks: it has
    no task id, or its task's partition is another (a hostile writer, decision 0123); None
    when it is."""
    if not record.key:
        return DecodeError("invalid_record", "a state record without a task id as its key")
    return misplaced(record.key.decode(errors="replace"), record.partition, partitions)


def _restore_state(lane: Lane, record: Record, *, report: bool = True) -> bool:
    """One state record: a running task's state, or a finished task's marker (its full state
    is not needed again, see `Lane`), dated by its record (`_marked_at`). False, and the task
    left as it was, for a record that is not the fold's (`report`: counted and logged)."""
    task_id = record.key.decode(errors="replace") if record.key else ""
    marker = record.value is not None and is_marker(record.headers)
    try:
        status = decode_marker(record.value) if marker else None
        folded = None if marker else decode_state(record.value, record.headers)
    except DecodeError as exc:
        if report:
            skip_record(SERVICE, record, exc)
        return False
    lane.states.pop(task_id, None)
    lane.finished.pop(task_id, None)
    lane.retired.pop(task_id, None)
    if status is not None:
        lane.finished[task_id] = _marked_at(record)
    elif folded is None:
        pass  # a tombstone: the task is gone
    elif folded.task.status.terminal:
        lane.finished[task_id] = _marked_at(record)
        lane.retired[task_id] = folded.task.status.value  # its marker replaces it
    else:
        lane.states[task_id] = folded
    return True


def _marked_at(record: Record) -> float:
    """When a finished task's record was written, by the monotonic clock (`Lane.finished`), so
    that a marker's age does not start again at every restore."""
    written_s: float = record.timestamp / 1000
    age = max(0.0, time.time() - written_s)  # a record from the future is new
    return time.monotonic() - age


async def _adopt_updates(
    settings: ProgressSettings, lanes: dict[int, Lane], checkpoints: dict[int, Checkpoint | None]
) -> None:
    topic = settings.topics.name(Topic.PROGRESS_UPDATES)
    async with _reader(settings, "read_uncommitted") as reader:
        partitions = len(await reader.partitions(topic))
        tps = await reader.assign(TopicPartition(topic, n) for n in lanes)
        starts = await reader.beginnings(tps)
        ends = await reader.ends(tps)
        for tp in tps:
            lane, checkpoint = lanes[tp.partition], checkpoints[tp.partition]
            if checkpoint is not None:
                lane.positions = dict(checkpoint.positions)
            if checkpoint is None:
                start = starts[tp]  # nothing was checkpointed: adopt all there is
            elif checkpoint.updates_end is None:
                start = ends[tp]  # the design before 0038 committed every update
            else:
                start = max(starts[tp], checkpoint.updates_end)
            reader.seek({tp: start})
            lane.updates_end = ends[tp]
        adopted = 0
        async for record in reader.to_the_end(tps):
            adopted += _adopt(lanes[record.partition], record, settings, partitions)
    if adopted:
        log.info("adopted updates written after the last checkpoint", extra={"n": adopted})


def _adopt(lane: Lane, record: Record, settings: ProgressSettings, partitions: int) -> int:
    """Adopt one update of the lane's partition of `progress.updates` (of `partitions`);
    returns 1 if it became its task's state, 0 if it was skipped (counted and logged)."""
    # The positions first: the last update of a batch carries them (decision 0109), and an
    # update that cannot be read (or is not this lane's) must not take them away from the ones
    # before it.
    for key, value in record.headers:
        if key == POSITIONS_HEADER:
            try:
                lane.positions = decode_positions(value, settings.topics, lane.number)
            except DecodeError as exc:
                skip_record(SERVICE, record, exc)
    try:
        update = decode_model(ProgressUpdate, record.value)
    except DecodeError as exc:
        skip_record(SERVICE, record, exc)
        return 0
    if error := misplaced(update.task_id, record.partition, partitions):
        skip_record(SERVICE, record, error)
        return 0
    now = time.monotonic()
    previous = lane.states.get(update.task_id)
    recent = (*(previous.recent_ids if previous else ()), update.event_id)[-DEDUPE_WINDOW:]
    ignored = previous.ignored if previous else 0
    lane.finished.pop(update.task_id, None)
    lane.retired.pop(update.task_id, None)
    lane.keep(update.task_id, Folded(Task.from_model(update.state), recent, ignored), now)
    return 1


def _reader(settings: ProgressSettings, isolation: Isolation) -> LogReader:
    return LogReader(
        settings,
        name=f"{SERVICE}-restore",
        isolation=isolation,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )

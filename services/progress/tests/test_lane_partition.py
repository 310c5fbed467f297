"""The fold takes a task's events from the task's partition only (decision 0123): an event of
task T read from another partition of `pipeline.tasks` (or of any topic the fold folds) would
be folded into a second, independent state of T in that lane, and T's updates written to a
partition of `progress.updates` that is not T's. It is dead-lettered (`wrong_partition`) like
any event the fold cannot take, and the lane goes on. `LaneWorker._fold_records` with real
records; the dead-letter path itself is proven on the broker (tests/integration/progress/
test_service.py).

Before it dead-letters one, the lane makes sure its topic has not grown since the fold started
(decision 0138): after a growth the event may be in its task's new partition, and the fold
stops instead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from ytmaker_dev.scenario import run_events
from ytmaker_progress.eta import EtaEstimated
from ytmaker_progress.lanes import Lane
from ytmaker_progress.runners.lane import LaneWorker
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import Event, encode
from ytmaker_shared.kafka.growth import PartitionsGrew, PartitionWatch
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic, task_partition

SETTINGS = ProgressSettings(topic_prefix="lane.")
PARTITIONS = 6
INPUTS = [SETTINGS.topics.name(topic) for topic in [*PIPELINE_TOPICS, Topic.PROGRESS_ETA]]
VICTIM = "t-victim"
HOME = task_partition(VICTIM, PARTITIONS)
WRONG = (HOME + 1) % PARTITIONS
NEIGHBOUR = next(
    name for name in (f"t-{i}" for i in range(10_000)) if task_partition(name, PARTITIONS) == WRONG
)


class Letters:
    """The fold's dead-letter writer (`DeadLetterWriter.write`), recording."""

    def __init__(self) -> None:
        self.written: list[tuple[Any, str, str]] = []

    async def write(self, record: Any, reason: str, detail: str) -> None:
        self.written.append((record, reason, detail))


class Updates:
    """The lane's `progress.updates` writer (`PartitionWriter.write`), recording the keys."""

    def __init__(self) -> None:
        self.keys: list[bytes] = []

    async def write(self, key: Any, value: Any, headers: Any = (), ending: Any = None) -> None:
        self.keys.append(key)


def _worker(lane: Lane, letters: Letters, *, now: int = PARTITIONS) -> LaneWorker:
    """A worker of a fold started with `PARTITIONS` partitions; the broker says `now`."""

    def fatal(exc: BaseException) -> None:
        raise AssertionError(f"the lane stopped the process: {exc!r}")

    async def counts() -> Mapping[str, int]:
        return dict.fromkeys(INPUTS, now)

    return LaneWorker(
        lane,
        SETTINGS,
        None,  # type: ignore[arg-type]  # the consumer: `_fold_records` does not use it
        letters,  # type: ignore[arg-type]
        fatal,
        PartitionWatch("test", dict.fromkeys(INPUTS, PARTITIONS), counts),
    )


class Log:
    """Records of one partition number of every input topic, offsets counted per topic."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.ends: dict[str, int] = {}

    def record(self, topic: Topic, event: Event | EtaEstimated) -> Any:
        name = SETTINGS.topics.name(topic)
        offset = self.ends[name] = self.ends.get(name, -1) + 1
        value = (
            event.model_dump_json().encode() if isinstance(event, EtaEstimated) else encode(event)
        )
        key = event.task_id.encode()
        return ConsumerRecord(name, self.partition, offset, 0, 0, key, value, None, 0, 0, [])


def _estimate(task_id: str) -> EtaEstimated:
    requested = run_events(task_id)[0][1]
    return EtaEstimated(
        task_id=task_id,
        project_id=requested.project_id,
        owner=requested.owner,
        occurred_at=requested.occurred_at,
        eta_seconds=60.0,
        based_on_offset=0,
    )


def _interleaved(first: list[Any], second: list[Any]) -> list[Any]:
    """One of each in turn, then the rest of the longer."""
    n = min(len(first), len(second))
    pairs = [item for pair in zip(first, second, strict=False) for item in pair]
    return pairs + first[n:] + second[n:]


async def test_an_event_outside_its_tasks_partition_is_dead_lettered_and_the_lane_goes_on() -> None:
    victim = [*run_events(VICTIM)[:4], (Topic.PROGRESS_ETA, _estimate(VICTIM))]
    neighbour = run_events(NEIGHBOUR)[:4]
    log = Log(WRONG)
    records = [log.record(topic, event) for topic, event in _interleaved(victim, neighbour)]
    hostile = [r for r in records if r.key == VICTIM.encode()]

    lane, letters, updates = Lane(WRONG, producers=(None, None)), Letters(), Updates()  # type: ignore[arg-type]
    await _worker(lane, letters)._fold_records(records, updates)  # type: ignore[arg-type]

    assert [(r.topic, r.offset) for r, _, _ in letters.written] == [
        (r.topic, r.offset) for r in hostile
    ]
    assert {reason for _, reason, _ in letters.written} == {"wrong_partition"}
    assert all(f"partition is {HOME} of {PARTITIONS}" in d for _, _, d in letters.written)
    assert set(lane.states) == {NEIGHBOUR}  # no second state of the victim in this lane
    assert set(updates.keys) == {NEIGHBOUR.encode()}  # nothing of it in this partition
    # the lane went on past every record, its own and the refused
    assert lane.positions == {TopicPartition(t, WRONG): end + 1 for t, end in log.ends.items()}


async def test_the_same_events_in_their_tasks_partition_are_folded() -> None:
    log = Log(HOME)
    records = [log.record(topic, event) for topic, event in run_events(VICTIM)[:4]]
    records.append(log.record(Topic.PROGRESS_ETA, _estimate(VICTIM)))
    lane, letters, updates = Lane(HOME, producers=(None, None)), Letters(), Updates()  # type: ignore[arg-type]
    await _worker(lane, letters)._fold_records(records, updates)  # type: ignore[arg-type]
    assert letters.written == []
    assert set(lane.states) == {VICTIM} and lane.states[VICTIM].task.eta_seconds == 60.0
    assert updates.keys == [VICTIM.encode()] * len(records)


async def test_an_event_that_looks_misplaced_after_its_topic_grew_stops_the_fold() -> None:
    """The victim's event, in the lane it hashes to by the count the topics have now, looks
    misplaced by the count the fold started with: not dead-lettered, not folded; the process
    stops to start again with the new count."""
    grown = next(n for n in range(PARTITIONS + 1, 64) if task_partition(VICTIM, n) != HOME)
    home = task_partition(VICTIM, grown)  # the victim's partition moved with the growth
    log = Log(home)
    records = [log.record(topic, event) for topic, event in run_events(VICTIM)[:2]]
    lane, letters, updates = Lane(home, producers=(None, None)), Letters(), Updates()  # type: ignore[arg-type]
    with pytest.raises(PartitionsGrew, match=f"{PARTITIONS} -> {grown}"):
        await _worker(lane, letters, now=grown)._fold_records(records, updates)  # type: ignore[arg-type]
    assert letters.written == [] and lane.states == {} and updates.keys == []

"""`ytmaker replay --verify`: read the log and run every check (`checks`, `foldcheck`).

The order of the reads makes a running system safe to audit: first where the fold stood at
its last checkpoints (`progress.state`, read committed), then `progress.updates` (read
uncommitted: every update there is real, decision 0038; each carries the positions right
after its event), then the inputs. Every update read was made from inputs read after it,
and every input below the positions had its update, if any, written before they were read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import TopicPartition

from ytmaker_cli.audit.checks import check_records, check_task
from ytmaker_cli.audit.foldcheck import Positions, check_fold, updates_by_task
from ytmaker_cli.audit.records import Input, Output, decode_input, decode_output
from ytmaker_cli.audit.report import Report
from ytmaker_cli.kafka.reader import RangeReader
from ytmaker_progress.positions import decode_checkpoint, is_positions
from ytmaker_shared.events import DecodeError
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic, Topics

#: What the fold reads.
FOLD_INPUTS: tuple[Topic, ...] = (*PIPELINE_TOPICS, Topic.PROGRESS_ETA)

#: `advance(records)` as records are read, after `total(records)` once.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Scope:
    """What to audit: every task, or one task, or one project's tasks."""

    task_id: str | None = None
    project_id: str | None = None

    def wants_input(self, rec: Input) -> bool:
        if self.task_id is None and self.project_id is None:
            return True
        if rec.event is None:
            return self.task_id is not None and rec.key == self.task_id
        if self.task_id is not None and rec.event.task_id != self.task_id:
            return False
        return self.project_id is None or rec.event.project_id == self.project_id

    def wants_output(self, out: Output) -> bool:
        if self.task_id is None and self.project_id is None:
            return True
        if out.update is None:
            return self.task_id is not None and out.key == self.task_id
        if self.task_id is not None and out.update.task_id != self.task_id:
            return False
        return self.project_id is None or out.update.project_id == self.project_id


def logical(name: str, topics: Topics) -> tuple[str, bool]:
    """The logical name of a physical topic: by this prefix, or (for a copy of a log under
    another prefix) by its known suffix."""
    for topic in Topic:
        if name == topics.name(topic) or name.endswith(topic.value):
            return topic.value, True
    return name, False


async def checkpoint_positions(log: RangeReader, topics: Topics) -> Positions | None:
    """The fold's input positions at each lane's latest checkpoint (the records with the
    `ytmaker.fold.positions` header on `progress.state`, decision 0038); None when none."""
    name = topics.name(Topic.PROGRESS_STATE)
    if name not in await log.topics():
        return None
    bounds = await log.bounds(await log.partitions(name))
    found: dict[tuple[str, int], int] = {}
    seen = False
    async for raw in log.read({tp: (0, end) for tp, (_, end) in bounds.items()}):
        if not is_positions(raw.headers):
            continue
        try:
            checkpoint = decode_checkpoint(raw.value, topics, raw.partition)
        except DecodeError:
            continue
        seen = True
        for tp, offset in checkpoint.positions.items():
            found[(logical(tp.topic, topics)[0], tp.partition)] = offset
    return found if seen else None


def with_update_positions(positions: Positions | None, outputs: list[Output]) -> Positions | None:
    """The checkpoints' positions moved on by the updates written after them: each update's
    header says where its lane stood right after its event."""
    merged = dict(positions or {})
    for out in outputs:
        for topic, offset in (out.positions or {}).items():
            key = (topic, out.coord.partition)
            merged[key] = max(offset, merged.get(key, 0))
    return merged if positions is not None or merged else None


async def _ranges(
    log: RangeReader, name: str
) -> tuple[dict[TopicPartition, tuple[int, int]], bool]:
    parts = await log.partitions(name)
    bounds = await log.bounds(parts)
    truncated = any(begin > 0 for begin, _ in bounds.values())
    return {tp: (begin, end) for tp, (begin, end) in bounds.items()}, truncated


async def verify(
    bootstrap: str,
    topics: Topics,
    *,
    scope: Scope = Scope(),
    skew: timedelta = timedelta(0),
    total: Progress | None = None,
    advance: Progress | None = None,
) -> Report:
    """Audit the log under `topics`; raises KafkaUnavailable."""
    report = Report()
    async with (
        RangeReader(bootstrap) as log,
        RangeReader(bootstrap, committed=False) as uncommitted,
    ):
        positions = await checkpoint_positions(log, topics)
        update_ranges, _ = await _ranges(uncommitted, topics.name(Topic.PROGRESS_UPDATES))
        input_ranges: dict[TopicPartition, tuple[int, int]] = {}
        truncated = False
        for topic in FOLD_INPUTS:
            ranges, cut = await _ranges(log, topics.name(topic))
            input_ranges.update(ranges)
            truncated = truncated or (cut and topic is Topic.TASKS)
        if total is not None:
            total(sum(e - b for b, e in [*update_ranges.values(), *input_ranges.values()]))
        outputs: list[Output] = []
        every: list[Output] = []
        async for raw in uncommitted.read(update_ranges):
            out = decode_output(raw, topics)
            every.append(out)
            if scope.wants_output(out):
                outputs.append(out)
            if advance is not None:
                advance(1)
        inputs: list[Input] = []
        async for raw in log.read(input_ranges):
            rec = decode_input(Topic(logical(raw.topic, topics)[0]), raw)
            if scope.wants_input(rec):
                inputs.append(rec)
            if advance is not None:
                advance(1)
    positions = with_update_positions(positions, every)
    by_task = check_records(inputs, report)
    for task_id, records in by_task.items():
        check_task(task_id, records, report, skew=skew, truncated=truncated)
    updates = updates_by_task(outputs, report)
    for task_id in sorted(set(by_task) | set(updates)):
        check_fold(task_id, by_task.get(task_id, []), updates.get(task_id, []), report, positions)
    return report

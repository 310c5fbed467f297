"""The audit's checks of the pipeline's log, pure (docs/cli.md, "What --verify checks").

- `envelope`: every record decodes with the shared codec (JSON, envelope, a known schema
  version, a valid payload);
- `key`, `topic`, `partition`: keyed by its task, on the topic its type belongs to, all of a
  task's records of one topic in one partition;
- `order`: per task, nothing happened before its `task.requested`, which is the task's first
  record on `pipeline.tasks`; per stage, its events' times never go back in the log;
- `causation`: every event but the roots (`task.requested`, control requests) names a cause
  of the same task that is in the log and did not happen later; one correlation per task;
- `state`: the stage state machine: a stage's progress and retries follow its start, nothing
  follows its terminal event (a redelivery of the same event aside), a stage starts only
  after its inputs completed, and no stage works after its task completed.

Times are the events' `occurred_at`; `skew` tolerates producers' clocks that differ. Times
are compared by their difference (`a - b > skew`), never shifted (`b + skew`), which would
overflow for an event at either end of the calendar.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from ytmaker_cli.audit.records import Input
from ytmaker_cli.audit.report import Report
from ytmaker_progress.eta import EtaEstimated
from ytmaker_shared.events import Event, StageEvent
from ytmaker_shared.stages import STAGE_INPUTS, Stage
from ytmaker_shared.topics import STAGE_TOPIC, Topic

ROOTS = frozenset(
    {"task.requested", "task.cancel_requested", "task.pause_requested", "task.resume_requested"}
)
_CONTROL = frozenset(ROOTS - {"task.requested"})
_ACTIVE = frozenset({"stage.started", "stage.progress", "stage.retrying"})
_TERMINAL = frozenset({"stage.completed", "stage.failed", "stage.cancelled"})


def home_topic(event: Event | EtaEstimated) -> Topic:
    """The topic an event of this type is written to (docs/architecture.md, "Topics")."""
    if isinstance(event, EtaEstimated):
        return Topic.PROGRESS_ETA
    if isinstance(event, StageEvent):
        return STAGE_TOPIC[event.stage]
    if event.type in _CONTROL:
        return Topic.CONTROL
    return Topic.TASKS


def check_records(inputs: Iterable[Input], report: Report) -> dict[str, list[Input]]:
    """Envelope, key and topic of every record; returns the decoded ones by task, each
    task's in (topic, partition, offset) order."""
    tasks: dict[str, list[Input]] = defaultdict(list)
    for rec in inputs:
        report.records[rec.coord.topic] += 1
        event = rec.event
        if event is None:
            report.add("envelope", rec.coord, rec.key, rec.error or "cannot be decoded")
            continue
        report.events[event.type] += 1
        if rec.version is not None:
            report.upcast[rec.version] += 1
        if rec.key != event.task_id:
            report.add("key", rec.coord, event.task_id, f"keyed {rec.key!r}, not by its task")
        if home_topic(event).value != rec.coord.topic:
            report.add(
                "topic", rec.coord, event.task_id, f"{event.type} belongs on {home_topic(event)}"
            )
        tasks[event.task_id].append(rec)
    for records in tasks.values():
        records.sort(key=lambda r: r.coord)
    report.tasks = len(tasks)
    return dict(tasks)


def check_task(
    task_id: str,
    records: list[Input],
    report: Report,
    *,
    skew: timedelta = timedelta(0),
    truncated: bool = False,
) -> None:
    """Every per-task check. `truncated`: the log's start has been deleted (retention), so a
    missing `task.requested` or cause is not a violation."""
    _partitions(task_id, records, report)
    events = [r for r in records if r.event is not None and not isinstance(r.event, EtaEstimated)]
    requested = next((r for r in events if r.event and r.event.type == "task.requested"), None)
    if requested is None:
        if truncated:
            report.partial_tasks += 1
        elif events:
            report.add("order", events[0].coord, task_id, "the task has no task.requested")
    else:
        _order_from_root(task_id, requested, events, report, skew)
        _causation(task_id, requested, events, report, skew, truncated)
    _stage_machines(task_id, events, report, skew)
    _after_task_end(task_id, events, report, skew)


def _ev(rec: Input) -> Event:
    event = rec.event
    assert event is not None and not isinstance(event, EtaEstimated)
    pipeline_event: Event = event
    return pipeline_event


def _partitions(task_id: str, records: list[Input], report: Report) -> None:
    by_topic: dict[str, dict[int, Input]] = defaultdict(dict)
    for rec in records:
        by_topic[rec.coord.topic].setdefault(rec.coord.partition, rec)
    for topic, firsts in by_topic.items():
        if len(firsts) > 1:
            for rec in sorted(firsts.values(), key=lambda r: r.coord)[1:]:
                report.add(
                    "partition",
                    rec.coord,
                    task_id,
                    f"the task's records of {topic} are in partitions {sorted(firsts)}",
                )


def _order_from_root(
    task_id: str, requested: Input, events: list[Input], report: Report, skew: timedelta
) -> None:
    first_on_tasks = next(r for r in events if r.coord.topic == Topic.TASKS.value)
    if first_on_tasks is not requested:
        report.add(
            "order",
            first_on_tasks.coord,
            task_id,
            f"{_ev(first_on_tasks).type} comes before the task's task.requested "
            f"({requested.coord})",
        )
    start = _ev(requested).occurred_at
    for rec in events:
        if start - _ev(rec).occurred_at > skew:
            report.add(
                "order",
                rec.coord,
                task_id,
                f"{_ev(rec).type} occurred at {_ev(rec).occurred_at.isoformat()}, before its "
                f"task was requested ({start.isoformat()})",
            )


def _causation(
    task_id: str,
    requested: Input,
    events: list[Input],
    report: Report,
    skew: timedelta,
    truncated: bool,
) -> None:
    by_id: dict[str, Input] = {}
    for rec in events:
        by_id.setdefault(_ev(rec).event_id, rec)
    correlation = _ev(requested).correlation_id
    for rec in events:
        event = _ev(rec)
        if event.correlation_id != correlation:
            report.add(
                "causation",
                rec.coord,
                task_id,
                f"correlation_id {event.correlation_id!r} is not its task's {correlation!r}",
            )
        if event.type in ROOTS:
            continue
        if event.causation_id is None:
            report.add("causation", rec.coord, task_id, f"{event.type} names no cause")
            continue
        cause = by_id.get(event.causation_id)
        if cause is None:
            if not truncated:
                report.add(
                    "causation",
                    rec.coord,
                    task_id,
                    f"{event.type} names cause {event.causation_id}, which is not in the "
                    "task's log",
                )
        elif _ev(cause).occurred_at - event.occurred_at > skew:
            report.add(
                "causation",
                rec.coord,
                task_id,
                f"{event.type} is caused by {_ev(cause).type} at {cause.coord}, which "
                "occurred after it",
            )


def _stage_machines(task_id: str, events: list[Input], report: Report, skew: timedelta) -> None:
    by_stage: dict[Stage, list[Input]] = defaultdict(list)
    for rec in events:
        if isinstance(rec.event, StageEvent):
            by_stage[rec.event.stage].append(rec)
    for stage, records in by_stage.items():
        _stage_machine(task_id, stage, records, report, skew)
    completed_at = {
        stage: min(_ev(r).occurred_at for r in recs if _ev(r).type == "stage.completed")
        for stage, recs in by_stage.items()
        if any(_ev(r).type == "stage.completed" for r in recs)
    }
    for stage, records in by_stage.items():
        for rec in records:
            if _ev(rec).type != "stage.started":
                continue
            at = _ev(rec).occurred_at
            missing = [
                str(need)
                for need in sorted(STAGE_INPUTS[stage])
                if need not in completed_at or completed_at[need] - at > skew
            ]
            if missing:
                report.add(
                    "state",
                    rec.coord,
                    task_id,
                    f"{stage} started before its inputs completed ({', '.join(missing)})",
                )


def _stage_machine(
    task_id: str, stage: Stage, records: list[Input], report: Report, skew: timedelta
) -> None:
    """One stage's events in log order (they are on one topic, in one partition). Completed
    and cancelled are final; a failed attempt may be followed by a later attempt (the fold
    takes a retry after a failure), by nothing of its own attempt or an earlier one."""
    started: set[int] = set()
    final: Input | None = None
    failed: Input | None = None
    previous: Input | None = None
    for rec in records:
        event = _ev(rec)
        if previous is not None and _ev(previous).occurred_at - event.occurred_at > skew:
            report.add(
                "order",
                rec.coord,
                task_id,
                f"{event.type} of {stage} occurred at {event.occurred_at.isoformat()}, before "
                f"the {_ev(previous).type} logged ahead of it at {previous.coord}",
            )
        previous = rec
        attempt = int(getattr(event.payload, "attempt", None) or 1)
        ended = final or failed
        if ended is not None and event.event_id != _ev(ended).event_id:
            failed_attempt = int(getattr(_ev(ended).payload, "attempt", None) or 1)
            if final is not None or attempt <= failed_attempt:
                report.add(
                    "state",
                    rec.coord,
                    task_id,
                    f"{event.type} of {stage} after its {_ev(ended).type} at {ended.coord}",
                )
                continue
            failed = None
        elif ended is not None:
            continue  # the same event again: a redelivery
        if event.type == "stage.started":
            started.add(attempt)
        elif event.type == "stage.progress" and attempt not in started:
            report.add(
                "order",
                rec.coord,
                task_id,
                f"stage.progress of {stage} (attempt {attempt}) before its stage.started",
            )
        elif event.type == "stage.failed":
            failed = rec
        elif event.type in _TERMINAL:
            final = rec


def _after_task_end(task_id: str, events: list[Input], report: Report, skew: timedelta) -> None:
    """No stage works after its task completed. After a failed or cancelled task, stages
    that run in parallel may still report until they learn of it: counted, not a
    violation (the fold ignores them)."""
    ends = [r for r in events if _ev(r).type in ("task.completed", "task.failed", "task.cancelled")]
    if not ends:
        return
    end = min(ends, key=lambda r: _ev(r).occurred_at)
    at = _ev(end).occurred_at
    for rec in events:
        event = _ev(rec)
        if event.type not in _ACTIVE or event.occurred_at - at <= skew:
            continue
        if _ev(end).type == "task.completed":
            report.add(
                "state",
                rec.coord,
                task_id,
                f"{event.type} of {getattr(event, 'stage', '?')} after task.completed at "
                f"{end.coord}",
            )
        else:
            report.after_end += 1

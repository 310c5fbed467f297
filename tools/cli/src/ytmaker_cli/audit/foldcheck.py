"""Is `progress.updates` what the fold makes of its inputs? Checked with the progress
service's own fold (`ytmaker_progress.fold.apply`), pure.

The fold merges a task's six pipeline topics and `progress.eta` in an order the log does not
record, but every update names the event that caused it and carries the task's whole state.
So, per task, in offset order:

- each update must be exactly what `apply(state of the previous update, its event)` makes
  (the first one: from no state), and no event may cause two updates;
- each event that caused no update must change nothing in some state the fold could have
  applied it to: the fold reads each input partition in offset order, so that is a state
  between the updates of the event's neighbours on its own partition.

Events the fold had not reached when the audit read its positions (the `ytmaker.fold.positions`
records of `progress.state`, moved on by the updates' headers) are counted as pending, not
checked for a missing update; so are the events of a partition no position names yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from ytmaker_cli.audit.records import FoldInput, Input, Output
from ytmaker_cli.audit.report import Report
from ytmaker_progress.fold import Folded, Task, Update, apply
from ytmaker_shared.progress import ProgressUpdate

#: (logical topic, partition) → the next offset the fold will read.
Positions = Mapping[tuple[str, int], int]


def updates_by_task(outputs: Iterable[Output], report: Report) -> dict[str, list[Output]]:
    """Decoded updates by task, in offset order; bad records and misplaced ones reported."""
    tasks: dict[str, list[Output]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for out in outputs:
        report.records[out.coord.topic] += 1
        if out.update is None:
            report.add("envelope", out.coord, out.key, out.error or "not an update")
            continue
        report.updates += 1
        task_id = out.update.task_id
        if out.key != task_id:
            report.add("key", out.coord, task_id, f"keyed {out.key!r}, not by its task")
        partitions[task_id].add(out.coord.partition)
        if len(partitions[task_id]) == 2:
            report.add(
                "partition",
                out.coord,
                task_id,
                "the task's updates are in more than one partition: offsets do not order them",
            )
        tasks[task_id].append(out)
    for items in tasks.values():
        items.sort(key=lambda o: o.coord)
    return dict(tasks)


def check_fold(
    task_id: str,
    inputs: list[Input],
    outputs: list[Output],
    report: Report,
    positions: Positions | None,
) -> None:
    events = [r for r in inputs if r.event is not None]
    by_id: dict[str, Input] = {}
    for rec in events:
        assert rec.event is not None
        by_id.setdefault(rec.event.event_id, rec)
    states: list[Folded] = []
    caused: dict[str, int] = {}
    previous: Folded | None = None
    #: The fold's own chain: what it held in memory whatever the log says. After a bad
    #: update the next one may follow from either (a fold that restored adopted the log's).
    own: Folded | None = None
    for index, out in enumerate(outputs):
        update = out.update
        assert update is not None
        logged: Task | None = None
        if update.event_id in caused:
            report.add(
                "fold",
                out.coord,
                task_id,
                f"a second update for event {update.event_id} ({update.event_type}): the fold "
                "applies an event once",
            )
        cause = by_id.get(update.event_id)
        if cause is None or cause.event is None:
            report.add(
                "fold",
                out.coord,
                task_id,
                f"the update names event {update.event_id} ({update.event_type}), which is "
                "not in the log",
            )
        else:
            folded, made = apply(previous, cause.event)
            own, own_made = (folded, made) if own is previous else apply(own, cause.event)
            logged = Task.from_model(update.state)
            if not made:
                report.add(
                    "fold",
                    out.coord,
                    task_id,
                    f"the fold makes no update of {cause.event.type} at {cause.coord} here",
                )
            elif not _same(made[0], update, logged) and not (
                own_made and _same(own_made[0], update, logged)
            ):
                diff = differences(made[0].model(), update)
                if diff:
                    report.add(
                        "fold",
                        out.coord,
                        task_id,
                        f"not what the fold makes of {cause.event.type} at {cause.coord}: "
                        + "; ".join(diff),
                    )
        caused.setdefault(update.event_id, index)
        # Go on from the state the log holds, so that one bad update is one violation.
        if logged is None:
            logged = Task.from_model(update.state)
        previous = Folded(task=logged)
        if own is None or cause is None or own.task == logged:
            own = previous  # the chains agree again (or the fold's cannot be followed)
        states.append(previous)
    _check_silent_events(task_id, events, states, caused, report, positions)


def _check_silent_events(
    task_id: str,
    events: list[Input],
    states: list[Folded],
    caused: dict[str, int],
    report: Report,
    positions: Positions | None,
) -> None:
    by_partition: dict[tuple[str, int], list[Input]] = defaultdict(list)
    for rec in events:
        by_partition[(rec.coord.topic, rec.coord.partition)].append(rec)
    for where, records in by_partition.items():
        records.sort(key=lambda r: r.coord.offset)
        indexes = [caused.get(_event(r).event_id) for r in records]
        for i, rec in enumerate(records):
            if indexes[i] is not None:
                continue
            # A partition no checkpoint or update of its lane names may not have been read
            # at all yet (a lane's first run just started): pending, like any unread event.
            if positions is not None and rec.coord.offset >= positions.get(where, 0):
                report.pending += 1
                continue
            before = [x for x in indexes[:i] if x is not None]
            after = [x for x in indexes[i + 1 :] if x is not None]
            low = max(before) if before else -1
            high = min(after) - 1 if after else len(states) - 1
            if not any(_changes_nothing(states, j, _event(rec)) for j in range(low, high + 1)):
                report.add(
                    "fold",
                    rec.coord,
                    task_id,
                    f"{_event(rec).type} should have made an update, and no update names it",
                )


def _event(rec: Input) -> FoldInput:
    assert rec.event is not None
    return rec.event


def _changes_nothing(states: list[Folded], index: int, event: FoldInput) -> bool:
    state = states[index] if index >= 0 else None
    _, made = apply(state, event)
    return not made


def _same(made: Update, update: ProgressUpdate, logged: Task) -> bool:
    """The fold's update equals the logged one: compared as the fold's dataclasses (cheap;
    `differences` says what differs when they do not)."""
    return bool(
        made.state == logged
        and made.type == update.type
        and made.event_id == update.event_id
        and made.event_type == update.event_type
        and made.occurred_at == update.occurred_at
        and made.task_id == update.task_id
        and made.project_id == update.project_id
        and made.owner == update.owner
    )


def differences(expected: ProgressUpdate, actual: ProgressUpdate, limit: int = 3) -> list[str]:
    """What differs between two updates, field by field (the state's fields one by one)."""
    a, b = expected.model_dump(mode="json"), actual.model_dump(mode="json")
    out: list[str] = []
    for name in a:
        if name == "state":
            for field, value in a["state"].items():
                if b["state"].get(field) != value:
                    out.append(
                        f"state.{field}: log {_short(b['state'].get(field))}, fold {_short(value)}"
                    )
        elif a[name] != b.get(name):
            out.append(f"{name}: log {_short(b.get(name))}, fold {_short(a[name])}")
    return out[:limit]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

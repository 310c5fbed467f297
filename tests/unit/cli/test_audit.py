"""The audit's checks (`ytmaker replay --verify`) on logs made of whole runs
(`ytmaker_dev.scenario`) folded by the real fold: a clean log passes; each kind of fault
is named with its coordinates. The test against the broker and running services is in
tests/e2e/clients/test_cli_operator.py."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from ytmaker_cli.audit.checks import check_records, check_task
from ytmaker_cli.audit.foldcheck import check_fold, updates_by_task
from ytmaker_cli.audit.records import Input, Output
from ytmaker_cli.audit.report import Coord, Report
from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import Folded, apply
from ytmaker_shared.events import StageProgressed, StageProgressPayload
from ytmaker_shared.progress import ProgressUpdate
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic


def build_log() -> tuple[list[Input], list[Output]]:
    """Three runs written topic by topic, folded in the order they were written."""
    runs = [
        run_events("t-ok", steps=2),
        run_events("t-retry", steps=2, retry_stage=Stage.IMAGES, pause=True, ending="failed"),
        run_events("t-cancel", steps=2, ending="cancelled"),
    ]
    inputs: list[Input] = []
    outputs: list[Output] = []
    next_offset: dict[str, int] = defaultdict(int)
    states: dict[str, Folded | None] = defaultdict(lambda: None)
    for events in runs:
        for topic, event in events:
            offset = next_offset[topic.value]
            next_offset[topic.value] += 1
            inputs.append(
                Input(Coord(topic.value, 0, offset), offset, event.task_id, event, None, 2)
            )
            states[event.task_id], made = apply(states[event.task_id], event)
            for update in made:
                coord = Coord(Topic.PROGRESS_UPDATES.value, 0, len(outputs))
                outputs.append(Output(coord, update.task_id, update.model()))
    return inputs, outputs


def audit(inputs: list[Input], outputs: list[Output], positions: dict | None = None) -> Report:
    report = Report()
    by_task = check_records(inputs, report)
    for task_id, records in by_task.items():
        check_task(task_id, records, report, skew=timedelta(0))
    updates = updates_by_task(outputs, report)
    for task_id in sorted(set(by_task) | set(updates)):
        check_fold(task_id, by_task.get(task_id, []), updates.get(task_id, []), report, positions)
    return report


def found(report: Report) -> set[tuple[str, str | None]]:
    return {(v.check, str(v.coord) if v.coord else None) for v in report.violations}


def test_a_clean_log_passes() -> None:
    inputs, outputs = build_log()
    report = audit(inputs, outputs)
    assert report.ok, report.sorted_violations()
    assert report.tasks == 3 and report.updates == len(outputs) > 30
    assert report.events["stage.retrying"] == 1 and report.upcast[2] == len(inputs)


def test_each_fault_is_named_with_its_coordinates() -> None:
    inputs, outputs = build_log()
    # 1. Out of order: the script's first progress logged before its start (offsets swapped).
    script = [i for i in inputs if i.coord.topic == Topic.SCRIPT.value and i.key == "t-ok"]
    started, progressed = script[0], script[1]
    assert started.event and started.event.type == "stage.started"
    swapped_progress = Input(started.coord, 0, "t-ok", progressed.event, None, 2)
    swapped_start = Input(progressed.coord, 0, "t-ok", started.event, None, 2)
    inputs[inputs.index(started)] = swapped_progress
    inputs[inputs.index(progressed)] = swapped_start
    # 2. A malformed record.
    bad = Coord(Topic.RENDER.value, 0, 999)
    inputs.append(Input(bad, 0, None, None, "invalid_json: Expecting value", None))
    # 3. Progress of the upload after it (and the task) completed.
    upload_done = next(
        i
        for i in inputs
        if i.key == "t-ok"
        and i.event
        and i.event.type == "stage.completed"
        and getattr(i.event, "stage", None) == Stage.UPLOAD
    )
    assert upload_done.event is not None
    late_event = upload_done.event.caused(
        StageProgressed,
        producer="upload/x",
        stage=Stage.UPLOAD,
        occurred_at=upload_done.event.occurred_at + timedelta(seconds=30),
        payload=StageProgressPayload(progress=50),
    )
    late = Coord(Topic.UPLOAD.value, 0, 1000)
    inputs.append(Input(late, 0, "t-ok", late_event, None, 2))
    # 4. An update the fold would not have made (its progress changed).
    victim = next(
        o for o in outputs if o.key == "t-retry" and o.update and o.update.state.progress > 30
    )
    assert victim.update is not None
    forged = victim.update.model_copy(
        update={"state": victim.update.state.model_copy(update={"progress": 99.5})}
    )
    outputs[outputs.index(victim)] = Output(victim.coord, victim.key, forged)
    # 5. An update that is missing (its event made one).
    dropped = next(
        o for o in outputs if o.key == "t-cancel" and o.update and o.update.type == "status"
    )
    outputs.remove(dropped)

    report = audit(inputs, outputs)
    where = found(report)
    assert ("order", str(swapped_progress.coord)) in where
    assert ("envelope", str(bad)) in where
    assert ("state", str(late)) in where
    assert ("fold", str(victim.coord)) in where
    forged_msg = next(v.message for v in report.violations if v.coord == victim.coord)
    assert "state.progress: log 99.5" in forged_msg
    assert dropped.update is not None
    dropped_cause = next(
        i for i in inputs if i.event and i.event.event_id == dropped.update.event_id
    )
    assert ("fold", str(dropped_cause.coord)) in where
    assert report.by_check()["fold"] >= 2
    assert not report.ok


def test_causes_and_inputs() -> None:
    inputs, outputs = build_log()
    render_start = next(
        i
        for i in inputs
        if i.key == "t-ok"
        and i.event
        and i.event.type == "stage.started"
        and getattr(i.event, "stage", None) == Stage.RENDER
    )
    assert render_start.event is not None
    early = render_start.event.model_copy(
        update={
            "occurred_at": render_start.event.occurred_at - timedelta(seconds=25),
            "causation_id": "no-such-event",
        }
    )
    inputs[inputs.index(render_start)] = Input(render_start.coord, 0, "t-ok", early, None, 2)
    report = audit(inputs, [o for o in outputs if o.key != "t-ok"])
    messages = [v.message for v in report.violations if v.coord == render_start.coord]
    assert any("render started before its inputs completed" in m for m in messages)
    assert any("names cause no-such-event" in m for m in messages)


def test_events_the_fold_has_not_reached_are_pending() -> None:
    inputs, outputs = build_log()
    done = next(i for i in inputs if i.event and i.event.type == "task.completed")
    cut = [o for o in outputs if not (o.update and o.update.event_type == "task.completed")]
    positions = {(t.value, 0): 10**6 for t in Topic}
    positions[(Topic.TASKS.value, 0)] = done.coord.offset  # the fold has not read it yet
    report = audit(inputs, cut, positions)
    assert report.ok, report.sorted_violations()
    assert report.pending == 1
    assert not audit(inputs, cut).ok  # without positions: everything counts as folded


def test_a_partition_the_fold_has_no_position_in_is_pending() -> None:
    """A lane that has neither checkpointed nor written an update yet (a run that has just
    started on it) may have read nothing: its events are pending, not missing updates."""
    inputs, _ = build_log()
    elsewhere = {(t.value, 1): 10**6 for t in Topic}  # another lane's checkpoint
    report = audit(inputs, [], elsewhere)
    assert report.ok, report.sorted_violations()
    assert report.pending == sum(1 for i in inputs if i.event is not None)
    assert not audit(inputs, []).ok  # without positions: everything counts as folded


def test_updates_json_round_trip_is_what_the_fold_made() -> None:
    """The audit reads updates from their JSON: the fold's own encoding compares equal."""
    from ytmaker_progress.records import decode_update

    inputs, outputs = build_log()
    reread = [
        Output(o.coord, o.key, decode_update(o.update.model_dump_json().encode()))
        for o in outputs
        if o.update is not None
    ]
    assert audit(inputs, reread).ok
    assert isinstance(reread[0].update, ProgressUpdate)


def test_a_forged_update_is_one_violation_not_a_trail() -> None:
    """An update whose progress was raised: the fold's next updates (made from its own state,
    lower than the forged figure) are not blamed too, though the overall figure never
    decreases from the state the log holds."""
    inputs, outputs = build_log()
    mine = [o for o in outputs if o.key == "t-ok" and o.update and o.update.state.progress > 30]
    victim = mine[0]
    assert victim.update is not None
    forged = victim.update.model_copy(
        update={"state": victim.update.state.model_copy(update={"progress": 99.5})}
    )
    outputs[outputs.index(victim)] = Output(victim.coord, victim.key, forged)
    report = audit(inputs, outputs)
    assert [(v.check, v.coord) for v in report.violations] == [("fold", victim.coord)]

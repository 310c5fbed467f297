"""The fold's records are the contract's JSON (docs/decisions/0028-fold-cpu.md).

The fold keeps plain dataclasses and writes them with orjson; for any history of a task (runs
of every shape, reordered, redelivered, replayed under new ids, random stage events and ETA
estimates, restarts from the state record), what it writes at every step must be exactly what
the contract models (`ProgressUpdate`, `TaskState`) write for the same data. When 0028 was
made, the new fold was also compared step by step with the pydantic fold it replaced (400
histories, and mutations of the new code that the comparison caught); the rules themselves
are pinned by `test_fold.py`'s properties and the crash test's chain of updates.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ytmaker_dev.scenario import run_events
from ytmaker_progress.eta import EtaEstimated
from ytmaker_progress.fold import Folded, Input, StageRun, Task, Update, apply
from ytmaker_progress.records import (
    FOLD_HEADER,
    decode_marker,
    decode_state,
    encode_marker,
    encode_state,
    encode_update,
    is_marker,
)
from ytmaker_shared.events import (
    DecodeError,
    ErrorInfo,
    StageCancelled,
    StageCancelledPayload,
    StageCompleted,
    StageCompletedPayload,
    StageFailed,
    StageFailedPayload,
    StageProgressed,
    StageProgressPayload,
    StageRetrying,
    StageRetryingPayload,
    StageStarted,
    StageStartedPayload,
    TaskRequested,
    decode_model,
)
from ytmaker_shared.progress import ProgressUpdate, StageState, TaskState, UpdateType
from ytmaker_shared.stages import Stage

stages = st.sampled_from(list(Stage))
attempts = st.integers(min_value=1, max_value=3)
figures = st.sampled_from([0.0, 10.0, 25.0, 33.33, 50.0, 99.99, 100.0]) | st.floats(0, 100)
maybe_text = st.sampled_from(["", "working", "step 2"])
zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
errors = st.builds(ErrorInfo, code=st.sampled_from(["boom", "flaky"]), message=maybe_text)


@st.composite
def stray_event(draw: st.DrawFn, base: TaskRequested) -> Input:
    """A stage event or an estimate with drawn figures: stale, early, repeated or new."""
    at = base.occurred_at + timedelta(seconds=draw(st.integers(0, 400)))
    stage, attempt = draw(stages), draw(attempts)
    common: dict[str, Any] = {"producer": "stray", "stage": stage, "occurred_at": at}
    kind = draw(st.sampled_from(["started", "progress", "completed", "failed", "retry", "cancel"]))
    if kind == "started":
        payload: Any = StageStartedPayload(attempt=attempt, message=draw(maybe_text))
        return base.caused(StageStarted, payload=payload, **common)
    if kind == "progress":
        payload = StageProgressPayload(
            progress=draw(figures),
            message=draw(maybe_text),
            current_step=draw(st.none() | st.just("step 1")),
            completed_steps=draw(st.none() | st.integers(0, 5)),
            total_steps=draw(st.none() | st.integers(0, 5)),
            attempt=attempt,
        )
        return base.caused(StageProgressed, payload=payload, **common)
    if kind == "completed":
        status = draw(st.sampled_from(["completed", "skipped"]))
        payload = StageCompletedPayload(status=status, attempt=attempt, message=draw(maybe_text))
        return base.caused(StageCompleted, payload=payload, **common)
    if kind == "failed":
        payload = StageFailedPayload(error=draw(errors), attempt=attempt)
        return base.caused(StageFailed, payload=payload, **common)
    if kind == "retry":
        delay = draw(st.sampled_from([0.0, 1.0, 2.5]))
        payload = StageRetryingPayload(attempt=attempt, delay_seconds=delay, error=draw(errors))
        return base.caused(StageRetrying, payload=payload, **common)
    if kind == "cancel":
        payload = StageCancelledPayload(message=draw(maybe_text))
        return base.caused(StageCancelled, payload=payload, **common)
    raise AssertionError(kind)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Input], set[int]]:
    """A task's events as the fold may receive them, and the steps after which it restarts."""
    run = [
        event
        for _, event in run_events(
            "t-1",
            steps=draw(st.integers(1, 4)),
            ending=draw(st.sampled_from(["completed", "failed", "cancelled"])),
            retry_stage=draw(st.none() | stages),
            pause=draw(st.booleans()),
        )
    ]
    base = run[0]
    assert isinstance(base, TaskRequested)
    out: list[Input] = []
    for i, event in enumerate(run):
        out.append(event)
        action = draw(st.sampled_from(["none"] * 6 + ["again", "new id", "stray", "eta", "swap"]))
        if action == "again":  # a redelivery of a recent event
            out.append(run[draw(st.integers(max(0, i - 70), i))])
        elif action == "new id":  # the same figures again under another id
            old = run[draw(st.integers(max(0, i - 5), i))]
            out.append(old.model_copy(update={"event_id": f"copy-{len(out)}"}))
        elif action == "stray":
            out.append(draw(stray_event(base)))
        elif action == "eta":
            out.append(
                EtaEstimated(
                    task_id=base.task_id,
                    project_id=base.project_id,
                    owner=base.owner,
                    # estimates are not normalised to UTC: their times keep any offset
                    occurred_at=event.occurred_at.astimezone(draw(zones)),
                    eta_seconds=draw(st.sampled_from([0.0, 12.5, 60.0]) | st.floats(0, 1e6)),
                    based_on_offset=i,
                )
            )
        elif action == "swap" and len(out) >= 2:  # arrived before the one it follows
            out[-1], out[-2] = out[-2], out[-1]
    if draw(st.booleans()):
        out = draw(st.permutations(out))
    restarts = set(draw(st.lists(st.integers(0, len(out) - 1), max_size=3)))
    return out, restarts


def _json(value: bytes) -> Any:
    return json.loads(value)


def _as_the_contract_writes_it(value: bytes, model: type[ProgressUpdate] | type[TaskState]) -> Any:
    """The JSON that the contract model itself writes for what `value` holds."""
    return _json(model.model_validate_json(value).model_dump_json().encode())


@given(histories())
@settings(max_examples=400, deadline=None)
def test_the_fold_writes_what_the_contract_models_write(case: tuple[list[Input], set[int]]) -> None:
    """At every step of any history, the records written with orjson are exactly the JSON of
    the contract models (`ProgressUpdate`, `TaskState`) for the same data, and a restart from
    the state record gives back the same fold state."""
    events, restarts = case
    state: Folded | None = None
    for step, event in enumerate(events):
        new, updates = apply(state, event)
        where = f"step {step}: {event.type} {event.event_id}"
        for update in updates:
            value = encode_update(update)
            assert _json(value) == _as_the_contract_writes_it(value, ProgressUpdate), where
            assert _json(value) == update.model_dump(mode="json"), where
        value, headers = encode_state(new)
        assert _json(value) == _as_the_contract_writes_it(value, TaskState), where
        restored = decode_state(value, headers)
        assert restored == new, where
        if step in restarts:  # the service restarts from its state record
            new = restored
        state = new


def test_the_fold_dataclasses_have_the_contract_fields_in_order() -> None:
    assert [f.name for f in fields(Task)] == list(TaskState.model_fields)
    assert [f.name for f in fields(StageRun)] == list(StageState.model_fields)
    assert [f.name for f in fields(Update)] == list(ProgressUpdate.model_fields)


def test_a_marker_holds_the_final_status_and_nothing_else() -> None:
    """A finished task's marker record on `progress.state` (decision 0100)."""
    for status in ("completed", "failed", "cancelled"):
        value, headers = encode_marker(status)
        assert is_marker(headers) and not is_marker([(FOLD_HEADER, b"{}")])
        assert decode_marker(value) == status
    refused = [
        None,
        b"",
        b"[]",
        b'{"status": "running"}',  # not a final status
        b'{"status": "done"}',
        b'{"status": "completed", "more": 1}',
        b'{"status": 1}',
    ]
    for value in refused:
        with pytest.raises(DecodeError):
            decode_marker(value)


#: Values a hostile record may put in any field of an update's state: integers and floats
#: beyond 64 bits (pydantic takes a whole float for an int), texts and objects past every
#: bound, wrong types.
hostile_values = st.sampled_from(
    [10**30, 1e30, 2**64, -1, -1e30, 1e308, "x" * 5_000, {"n": 10**30}, {"x": "y" * 20_000}]
) | st.recursive(st.integers() | st.floats(allow_nan=False, allow_infinity=False), st.lists)
state_fields = st.sampled_from([*TaskState.model_fields, "stages.script.attempt"])


@given(histories(), state_fields, hostile_values)
@settings(max_examples=300, deadline=None)
def test_an_update_the_contract_accepts_can_be_written_back(
    case: tuple[list[Input], set[int]], field: str, value: Any
) -> None:
    """The fold's restore adopts updates read from `progress.updates` and writes them back as
    states (`restore._adopt`); a CI run's fuzz seed found an update whose state held an
    integer beyond 64 bits, which the contract accepted and the fold could not write: it
    stopped. Whatever a state holds, either the contract refuses it or it can be written."""
    events, _ = case
    state: Folded | None = None
    for event in events:
        state, _ = apply(state, event)
    assert state is not None
    update = Update(
        type=UpdateType.PROGRESS,
        task_id=state.task.task_id,
        project_id=state.task.project_id,
        owner=state.task.owner,
        event_id="e-1",
        event_type="stage.progress",
        occurred_at=events[0].occurred_at,
        state=state.task,
    )
    raw = _json(encode_update(update))
    where = raw["state"]
    *path, name = field.split(".")
    for key in path:
        where = where.setdefault(key, {})
    where[name] = value
    try:
        adopted = decode_model(ProgressUpdate, json.dumps(raw).encode())
    except DecodeError:
        return
    folded = Folded(Task.from_model(adopted.state))
    encode_state(folded)
    encode_update(replace(update, state=folded.task))


def test_a_state_whose_bookkeeping_the_fold_could_not_write_back_is_refused() -> None:
    """The `ytmaker.fold` header of a state record is read back by the restore and written
    again by the next checkpoint: a count beyond 64 bits must be refused on the way in."""
    value, _ = encode_state(Folded(Task(task_id="t-1", project_id="p-1", owner="u-1")))
    for ignored in (10**30, -1, 1.5, True):
        header = json.dumps({"recent_ids": [], "ignored": ignored}).encode()
        with pytest.raises(DecodeError):
            decode_state(value, [(FOLD_HEADER, header)])
    header = json.dumps({"recent_ids": ["e-1"], "ignored": 2**63 - 1}).encode()
    restored = decode_state(value, [(FOLD_HEADER, header)])
    assert restored is not None
    encode_state(restored)

"""The fold writes what the pydantic fold wrote (docs/decisions/0028-fold-cpu.md).

`reference_fold.py` is the fold and record encoders before 0028, kept verbatim as the oracle.
For any history of a task (runs of every shape, reordered, redelivered, replayed under new ids,
random stage events and ETA estimates, restarts from the state record), both folds must agree
on every step: whether the state changed, the updates' JSON and their decoded `ProgressUpdate`,
the state record's JSON, its decoded `TaskState` and its bookkeeping header.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import fields
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ytmaker_progress.eta import EtaEstimated
from ytmaker_progress.fold import Folded, Input, StageRun, Task, Update, apply
from ytmaker_progress.records import decode_state, encode_state, encode_update
from ytmaker_progress.scenario import run_events
from ytmaker_shared.events import (
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
    TaskCompleted,
    TaskCompletedPayload,
    TaskRequested,
)
from ytmaker_shared.progress import ProgressUpdate, StageState, TaskState
from ytmaker_shared.stages import Stage

_spec = importlib.util.spec_from_file_location(
    "progress_reference_fold", Path(__file__).with_name("reference_fold.py")
)
assert _spec is not None and _spec.loader is not None
reference: Any = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = reference  # dataclasses look their module up
_spec.loader.exec_module(reference)

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


@given(histories())
@settings(max_examples=400, deadline=None)
def test_the_fold_writes_what_the_pydantic_fold_wrote(case: tuple[list[Input], set[int]]) -> None:
    events, restarts = case
    state: Folded | None = None
    ref_state: Any = None
    for step, event in enumerate(events):
        new, updates = apply(state, event)
        ref_new, ref_updates = reference.apply(ref_state, event)
        where = f"step {step}: {event.type} {event.event_id}"
        assert (new is state) == (ref_new is ref_state), where
        assert new.ignored == ref_new.ignored, where
        assert new.recent_ids == ref_new.recent_ids, where
        assert len(updates) == len(ref_updates), where
        for update, ref_update in zip(updates, ref_updates, strict=True):
            value, ref_value = encode_update(update), reference.encode_update(ref_update)
            assert _json(value) == _json(ref_value), where
            assert ProgressUpdate.model_validate_json(value) == ref_update, where
            assert (update.task_id, update.type) == (ref_update.task_id, ref_update.type), where
        value, headers = encode_state(new)
        ref_value, ref_headers = reference.encode_state(ref_new)
        assert _json(value) == _json(ref_value), where
        assert TaskState.model_validate_json(value) == ref_new.task, where
        assert headers == ref_headers, where
        assert new.task.status.terminal == ref_new.task.status.terminal, where
        if step in restarts:  # the service restarts from its state record
            restored = decode_state(value, headers)
            assert restored == new, where
            new = restored
        state, ref_state = new, ref_new


def test_the_fold_dataclasses_have_the_contract_fields_in_order() -> None:
    assert [f.name for f in fields(Task)] == list(TaskState.model_fields)
    assert [f.name for f in fields(StageRun)] == list(StageState.model_fields)
    assert [f.name for f in fields(Update)] == list(ProgressUpdate.model_fields)


def test_what_orjson_cannot_write_is_written_by_the_contract_model() -> None:
    events = [event for _, event in run_events("t-1")]
    completed = events[-1]
    assert isinstance(completed, TaskCompleted)
    huge = completed.model_copy(update={"payload": TaskCompletedPayload(result={"views": 2**70})})
    state, ref_state = None, None
    for event in [*events[:-1], huge]:
        state, updates = apply(state, event)
        ref_state, ref_updates = reference.apply(ref_state, event)
    assert encode_update(updates[0]) == reference.encode_update(ref_updates[0])
    assert encode_state(state)[0] == reference.encode_state(ref_state)[0]
    assert updates[0].model_dump(mode="json") == ref_updates[0].model_dump(mode="json")

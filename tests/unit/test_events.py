"""The event contracts (DESIGN §3): every type round-trips, old versions upcast, bad bytes are
refused with a reason, and the committed JSON Schema is current."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import uuid6
from hypothesis import given
from hypothesis import strategies as st

from ytmaker_shared.events import (
    CONTROL_ACTIONS,
    CONTROL_REQUESTS,
    EVENT_TYPES,
    SCHEMA_VERSION,
    Artifact,
    CancelTask,
    ControlPayload,
    DecodeError,
    ErrorInfo,
    PauseTask,
    ResumeTask,
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
    TaskCancelled,
    TaskCancelledPayload,
    TaskCompleted,
    TaskCompletedPayload,
    TaskFailed,
    TaskFailedPayload,
    TaskRequested,
    TaskRequestedPayload,
    decode,
    decode_model,
    encode,
    new_event_id,
    uuid7_millis,
)
from ytmaker_shared.events.envelope import derived_event_id
from ytmaker_shared.events.schema import SCHEMA_FILE, render
from ytmaker_shared.events.upcasting import UnknownSchemaVersion, upcast
from ytmaker_shared.stages import STAGE_WEIGHTS, Stage

FIXTURES = Path(__file__).parents[1] / "fixtures" / "events"
ENVELOPE = {
    "task_id": "t-1",
    "project_id": "p-1",
    "owner": "alice",
    "producer": "test/1",
    "correlation_id": "req-1",
}
ERROR = ErrorInfo(code="rate_limited", message="429 from the image API", details={"retry": 2})
SAMPLES: dict[type[Any], dict[str, Any]] = {
    TaskRequested: {"payload": TaskRequestedPayload(title="Bees", content="Bees dance.")},
    TaskCompleted: {"payload": TaskCompletedPayload(result={"video": "file:///v.mp4"})},
    TaskFailed: {"payload": TaskFailedPayload(error=ERROR, failed_stage=Stage.RENDER)},
    TaskCancelled: {"payload": TaskCancelledPayload(reason="user")},
    StageStarted: {"stage": Stage.SCRIPT, "payload": StageStartedPayload(attempt=2)},
    StageProgressed: {
        "stage": Stage.IMAGES,
        "payload": StageProgressPayload(
            progress=40, message="2 of 5", current_step="image 2", completed_steps=2, total_steps=5
        ),
    },
    StageCompleted: {
        "stage": Stage.RENDER,
        "payload": StageCompletedPayload(
            artifacts=(Artifact(name="video.mp4", uri="file:///a/v.mp4", size=10, sha256="0" * 64),)
        ),
    },
    StageFailed: {"stage": Stage.UPLOAD, "payload": StageFailedPayload(error=ERROR, attempt=3)},
    StageRetrying: {
        "stage": Stage.AUDIO,
        "payload": StageRetryingPayload(attempt=2, delay_seconds=1.5, error=ERROR),
    },
    StageCancelled: {"stage": Stage.AVATARS, "payload": StageCancelledPayload(message="bye")},
    CancelTask: {"payload": ControlPayload(requested_by="alice", reason="changed my mind")},
    PauseTask: {"payload": ControlPayload(requested_by="alice")},
    ResumeTask: {"payload": ControlPayload(requested_by="alice")},
}


def test_every_event_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_every_event_type_round_trips_through_json(event_type: type[Any]) -> None:
    event = event_type(**ENVELOPE, **SAMPLES[event_type])
    data = encode(event)
    assert json.loads(data)["type"] == event.type
    assert decode(data) == event
    assert type(decode(data)) is event_type


def test_event_ids_are_uuid7_and_sortable_by_time() -> None:
    first = TaskRequested(**ENVELOPE, **SAMPLES[TaskRequested])
    second = TaskRequested(**ENVELOPE, **SAMPLES[TaskRequested])
    assert uuid6.UUID(first.event_id).version == 7
    assert first.event_id < second.event_id


def test_caused_carries_the_run_and_points_at_its_cause() -> None:
    requested = TaskRequested(**ENVELOPE, **SAMPLES[TaskRequested])
    started = requested.caused(
        StageStarted, stage=Stage.SCRIPT, producer="script/1", payload=StageStartedPayload()
    )
    assert (started.task_id, started.owner, started.correlation_id) == ("t-1", "alice", "req-1")
    assert started.causation_id == requested.event_id
    assert started.event_id != requested.event_id


def test_events_are_frozen() -> None:
    event = TaskRequested(**ENVELOPE, **SAMPLES[TaskRequested])
    with pytest.raises(ValueError, match="frozen"):
        event.task_id = "other"  # type: ignore[misc]


def test_old_version_upcasts_to_current() -> None:
    event = decode((FIXTURES / "v1_stage_progress.json").read_bytes())
    assert isinstance(event, StageProgressed)
    assert event.schema_version == SCHEMA_VERSION
    assert event.producer == "assets/worker-1"
    assert event.occurred_at.isoformat() == "2024-06-01T12:00:00+00:00"
    assert event.payload.progress == pytest.approx(40.0)
    assert (event.payload.current_step, event.payload.total_steps) == ("image 2", 5)
    assert event.payload.completed_steps == 2


def test_old_task_requested_upcasts_and_keeps_its_content() -> None:
    event = decode((FIXTURES / "v1_task_requested.json").read_bytes())
    assert isinstance(event, TaskRequested)
    assert event.payload.content == "Stored before version 2."
    assert event.producer == "gateway/1"


@pytest.mark.parametrize("version", [0, 3, 99, "2", None, 1.0])
def test_unknown_schema_versions_are_refused(version: object) -> None:
    raw = json.loads(encode(TaskRequested(**ENVELOPE, **SAMPLES[TaskRequested])))
    raw["schema_version"] = version
    with pytest.raises(DecodeError) as caught:
        decode(json.dumps(raw).encode())
    assert caught.value.reason == "unknown_schema_version"
    with pytest.raises(UnknownSchemaVersion):
        upcast(raw)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (None, "invalid_json"),
        (b'{"schema_version": 2, "type": "task.exploded"}', "invalid_event"),
        (b'{"schema_version": 1, "type": "stage.progress"}', "invalid_event"),
    ],
)
def test_bad_bytes_are_refused_with_a_reason(data: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(data)
    assert caught.value.reason == reason
    assert caught.value.detail


def _v1_progress(progress: str) -> bytes:
    """A version-1 stage.progress event whose `progress` is the JSON text given."""
    raw = json.loads(encode(StageProgressed(**ENVELOPE, **SAMPLES[StageProgressed])))
    raw["schema_version"] = 1
    raw["timestamp"] = raw.pop("occurred_at")
    raw["source"] = raw.pop("producer")
    raw["payload"]["progress"] = 0.5
    return json.dumps(raw).replace("0.5", progress, 1).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 2000 + b"]" * 2000,  # deep nesting: RecursionError in the stdlib parser
        b'{"a": ' * 2000 + b"1" + b"}" * 2000,
        b"9" * 5000,  # more digits than int() takes: ValueError in the stdlib parser
        _v1_progress("1e400"),  # infinity in the v1 upcaster: OverflowError
        _v1_progress("9" * 5000),
        _v1_progress('"half"'),  # a string where the upcaster multiplies
        _v1_progress("[1]"),
        _v1_progress("1e300"),  # finite, then out of range once scaled
        b'{"schema_version": 1, "type": "stage.progress"}',  # v1 without its fields
        b'{"schema_version": 1, "timestamp": 1, "source": 2, "payload": "x", '
        b'"type": "stage.progress"}',
        b'{"schema_version": 2, "type": {"a": 1}}',
        b'"\\ud800"',  # a lone surrogate
        b"\x00" * 10,
    ],
)
def test_any_bytes_raise_decode_error_and_nothing_else(data: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(data)
    assert caught.value.reason in {"invalid_json", "invalid_event", "unknown_schema_version"}
    assert 0 < len(caught.value.detail) <= 500


@given(st.binary(max_size=512))
def test_random_bytes_raise_decode_error_and_nothing_else(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


def test_decode_model_refuses_any_bytes_with_decode_error() -> None:
    for data in (None, b"", b"[" * 5000, b"9" * 5000, b'{"task_id": 1}'):
        with pytest.raises(DecodeError) as caught:
            decode_model(TaskRequested, data)
        assert caught.value.reason == "invalid_record"


def test_invalid_fields_are_named_in_the_error() -> None:
    raw = json.loads(encode(StageProgressed(**ENVELOPE, **SAMPLES[StageProgressed])))
    raw["payload"]["progress"] = 140
    with pytest.raises(DecodeError, match=r"payload\.progress"):
        decode(json.dumps(raw).encode())


def test_naive_timestamps_are_refused() -> None:
    raw = json.loads(encode(TaskCancelled(**ENVELOPE, **SAMPLES[TaskCancelled])))
    raw["occurred_at"] = "2026-01-01T00:00:00"
    with pytest.raises(DecodeError, match="time zone"):
        decode(json.dumps(raw).encode())


def test_stage_events_require_a_stage() -> None:
    raw = json.loads(encode(StageStarted(**ENVELOPE, **SAMPLES[StageStarted])))
    raw["stage"] = None
    with pytest.raises(DecodeError):
        decode(json.dumps(raw).encode())


def test_committed_json_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        "shared/schemas/events.schema.json is stale: run "
        "`python -m ytmaker_shared.events.schema` and commit the result"
    )


def test_json_schema_names_every_event_type() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    named = set(schema["discriminator"]["mapping"])
    assert named == {cls.model_fields["type"].default for cls in EVENT_TYPES}


def test_stage_weights_sum_to_100() -> None:
    assert sum(STAGE_WEIGHTS.values()) == 100
    assert set(STAGE_WEIGHTS) == set(Stage)


@given(st.integers(min_value=0, max_value=2**48 - 1), st.text(max_size=20))
def test_a_uuid7_tells_the_millisecond_it_was_made(millis: int, seed: str) -> None:
    assert uuid7_millis(derived_event_id(millis, seed)) == millis


def test_only_a_uuid7_has_a_time() -> None:
    made = uuid7_millis(new_event_id())
    assert made is not None and abs(made - time.time() * 1000) < 60_000
    assert uuid7_millis(str(uuid.uuid4())) is None
    assert uuid7_millis("not-a-uuid") is None


def test_the_control_actions_are_the_control_requests() -> None:
    assert set(CONTROL_REQUESTS) == CONTROL_ACTIONS == {"cancel", "pause", "resume"}
    assert CONTROL_REQUESTS["cancel"] is CancelTask

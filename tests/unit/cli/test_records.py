"""`ytmaker replay` shows every kind of `progress.state` record the fold writes: a state, a
checkpoint, a finished task's marker (decision 0100), a tombstone; a forged marker is an
error row, not a crash."""

from __future__ import annotations

from ytmaker_cli.kafka.reader import Raw
from ytmaker_cli.ops.records import show
from ytmaker_progress.records import encode_marker
from ytmaker_shared.topics import Topic


def state_record(value: bytes | None, headers: list[tuple[str, bytes]]) -> Raw:
    return Raw("progress.state", 0, 7, 1_700_000_000_000, b"t-1", value, tuple(headers))


def test_a_marker_and_a_tombstone_are_shown_for_what_they_are() -> None:
    marker = show(Topic.PROGRESS_STATE, state_record(*encode_marker("failed")))
    assert (marker.type, marker.task_id, marker.detail) == ("fold.finished", "t-1", "failed")
    assert marker.body == {"status": "failed"} and marker.error is None
    tombstone = show(Topic.PROGRESS_STATE, state_record(None, []))
    assert (tombstone.type, tombstone.task_id, tombstone.error) == ("tombstone", "t-1", None)


def test_a_forged_marker_is_an_error_row() -> None:
    _, headers = encode_marker("completed")
    forged = show(Topic.PROGRESS_STATE, state_record(b'{"status": "running"}', headers))
    assert forged.body is None and forged.error

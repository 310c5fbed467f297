"""A record of any ytmaker topic, decoded for people (a table row) and programs (JSON):
pipeline events, updates, estimates and states through the one decode entry point
(`ytmaker_shared.events.codec`), dead letters by their headers."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from ytmaker_cli.kafka.reader import Raw
from ytmaker_progress.positions import is_positions
from ytmaker_progress.records import decode_estimate, decode_marker, is_marker
from ytmaker_shared.events import DecodeError, decode, decode_model
from ytmaker_shared.kafka.dlq import DeadLetter
from ytmaker_shared.progress import ProgressUpdate, TaskState
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic


@dataclass(frozen=True)
class Shown:
    """One record, decoded as far as it goes."""

    topic: str  # logical name
    raw: Raw
    task_id: str | None
    project_id: str | None
    type: str
    stage: str
    detail: str
    body: dict[str, Any] | None  # the decoded record as JSON
    error: str | None

    @property
    def time(self) -> str:
        """The record's timestamp in ISO 8601; one that no date holds (a producer may set
        any 64-bit number, year 10000 and beyond) as its milliseconds, `<n> ms`."""
        try:
            return datetime.fromtimestamp(self.raw.timestamp / 1000, UTC).isoformat(
                timespec="milliseconds"
            )
        except (ValueError, OverflowError, OSError):
            return f"{self.raw.timestamp} ms"

    @property
    def clock(self) -> str:
        """The time of day of `time` (a table's column), or all of it when it is no date."""
        time = self.time
        return time[11:23] if time[10:11] == "T" else time

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.raw.partition,
            "offset": self.raw.offset,
            "timestamp": self.time,
            "key": _text(self.raw.key),
            "task_id": self.task_id,
            "type": self.type,
            "record": self.body,
            "error": self.error,
        }
        if self.body is None:
            out["value"] = _text(self.raw.value)
        return out


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def dead_letter(raw: Raw) -> DeadLetter:
    """Raises KeyError or ValueError for a record without the dead-letter headers."""
    return DeadLetter.from_record(cast(ConsumerRecord[Any, Any], raw))


def show(topic: Topic | str, raw: Raw) -> Shown:
    """Decode `raw` of `topic` (logical) for display; never raises."""
    name = str(topic)
    key = _text(raw.key)
    try:
        if topic in PIPELINE_TOPICS:
            event = decode(raw.value)
            payload: Any = event.payload
            bits = [
                f"{payload.progress:g} %" if hasattr(payload, "progress") else "",
                f"attempt {payload.attempt}" if getattr(payload, "attempt", 1) > 1 else "",
                getattr(payload, "message", "") or "",
                payload.error.message if getattr(payload, "error", None) else "",
            ]
            return Shown(
                name,
                raw,
                event.task_id,
                event.project_id,
                event.type,
                str(event.stage or ""),
                "  ".join(b for b in bits if b),
                event.model_dump(mode="json"),
                None,
            )
        if topic is Topic.PROGRESS_UPDATES:
            update = decode_model(ProgressUpdate, raw.value)
            state = update.state
            detail = f"{state.progress:.1f} %  {state.status}  {state.message}"
            return Shown(
                name,
                raw,
                update.task_id,
                update.project_id,
                f"{update.type}:{update.event_type}",
                str(state.stage or ""),
                detail,
                update.model_dump(mode="json"),
                None,
            )
        if topic is Topic.PROGRESS_ETA:
            estimate = decode_estimate(raw.value)
            return Shown(
                name,
                raw,
                estimate.task_id,
                estimate.project_id,
                estimate.type,
                "",
                f"eta {estimate.eta_seconds:g}s",
                estimate.model_dump(mode="json"),
                None,
            )
        if topic is Topic.PROGRESS_STATE:
            if is_positions(raw.headers):
                return Shown(name, raw, None, None, "fold.positions", "", "", None, None)
            if raw.value is None:
                return Shown(name, raw, key, None, "tombstone", "", "", None, None)
            if is_marker(raw.headers):  # a finished task's state, once evicted (decision 0100)
                status = decode_marker(raw.value)
                return Shown(
                    name, raw, key, None, "fold.finished", "", status, {"status": status}, None
                )
            task = decode_model(TaskState, raw.value)
            return Shown(
                name,
                raw,
                task.task_id,
                task.project_id,
                "state",
                str(task.stage or ""),
                f"{task.progress:.1f} %  {task.status}",
                task.model_dump(mode="json"),
                None,
            )
        if topic is Topic.DLQ:
            letter = dead_letter(raw)
            body = {
                "topic": letter.topic,
                "partition": letter.partition,
                "offset": letter.offset,
                "reason": letter.reason,
                "detail": letter.detail,
                "group": letter.consumer_group,
                "service": letter.service,
                "failed_at": letter.failed_at,
            }
            detail = f"{letter.topic}[{letter.partition}]@{letter.offset} {letter.reason}"
            return Shown(name, raw, key, None, "dead_letter", "", detail, body, None)
    except DecodeError as exc:
        return Shown(name, raw, key, None, "?", "", exc.reason, None, f"{exc.reason}: {exc.detail}")
    except (ValidationError, ValueError, KeyError) as exc:
        return Shown(name, raw, key, None, "?", "", "undecodable", None, str(exc)[:300])
    return Shown(name, raw, key, None, "?", "", "", None, None)

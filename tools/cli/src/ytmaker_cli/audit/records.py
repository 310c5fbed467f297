"""Raw records → what the audit checks. Pipeline events are decoded by the shared codec
(`ytmaker_shared.events.decode`: envelope, schema version and upcasting, as every consumer
does); ETA estimates and updates by the progress service's own record functions."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ytmaker_cli.audit.report import Coord
from ytmaker_cli.kafka.reader import Raw
from ytmaker_progress.fold import Input as FoldInput
from ytmaker_progress.positions import POSITIONS_HEADER, decode_positions
from ytmaker_progress.records import decode_estimate
from ytmaker_shared.events import DecodeError, decode, decode_model
from ytmaker_shared.progress import ProgressUpdate
from ytmaker_shared.topics import Topic, Topics

__all__ = ["FoldInput", "Input", "Output", "decode_input", "decode_output"]


@dataclass(frozen=True)
class Input:
    """A record of a topic the fold reads (the pipeline topics and `progress.eta`)."""

    coord: Coord
    timestamp: int
    key: str | None
    event: FoldInput | None
    error: str | None = None  # why it could not be decoded
    version: int | None = None  # the schema version as written (before upcasting)


@dataclass(frozen=True)
class Output:
    """A record of `progress.updates`; `positions`: its header's positions of the fold's
    inputs right after the update's event (logical topic → next offset of the lane)."""

    coord: Coord
    key: str | None
    update: ProgressUpdate | None
    error: str | None = None
    positions: dict[str, int] | None = None


def _key(raw: Raw) -> str | None:
    if raw.key is None:
        return None
    try:
        return raw.key.decode()
    except UnicodeDecodeError:
        return repr(raw.key)


def _written_version(value: bytes | None) -> int | None:
    try:
        version = json.loads(value or b"").get("schema_version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, int) else None


def decode_input(topic: Topic, raw: Raw) -> Input:
    coord = Coord(topic.value, raw.partition, raw.offset)
    try:
        event: FoldInput = (
            decode_estimate(raw.value) if topic is Topic.PROGRESS_ETA else decode(raw.value)
        )
    except DecodeError as exc:
        return Input(coord, raw.timestamp, _key(raw), None, f"{exc.reason}: {exc.detail}")
    version = _written_version(raw.value) if topic is not Topic.PROGRESS_ETA else None
    return Input(coord, raw.timestamp, _key(raw), event, None, version)


def decode_output(raw: Raw, topics: Topics) -> Output:
    """An update through the shared decode entry point, and its positions header."""
    coord = Coord(Topic.PROGRESS_UPDATES.value, raw.partition, raw.offset)
    positions = None
    header = next((v for k, v in raw.headers if k == POSITIONS_HEADER), None)
    if header is not None:
        try:
            found = decode_positions(header, topics, raw.partition)
            positions = {topics.logical(tp.topic).value: o for tp, o in found.items()}
        except (DecodeError, ValueError):
            positions = None
    if raw.value is None:
        return Output(coord, _key(raw), None, "a tombstone in progress.updates", positions)
    try:
        return Output(coord, _key(raw), decode_model(ProgressUpdate, raw.value), None, positions)
    except DecodeError as exc:
        return Output(coord, _key(raw), None, f"{exc.reason}: {exc.detail}", positions)

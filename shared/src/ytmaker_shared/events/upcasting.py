"""Bring stored events of older schema versions up to the current one.

Each `upcast_vN_vN1` takes the raw event dict of version N and returns version N+1; `upcast`
chains them. They work on dicts, before validation, so old bytes in the log stay readable for
ever. Every function has an old-version fixture in tests/fixtures/events/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ytmaker_shared.events.envelope import SCHEMA_VERSION

RawEvent = dict[str, Any]


class UnknownSchemaVersion(ValueError):
    """The event's `schema_version` is one this code does not know (newer, or nonsense)."""


def upcast_v1_v2(event: RawEvent) -> RawEvent:
    """Version 1 (the first design's messages) to version 2.

    v1 named the producer clock `timestamp` and the producer `source`; its `stage.progress`
    carried progress as a fraction from 0 to 1 and the steps as `step`, `steps` and `done`.
    """
    out = dict(event)
    out["occurred_at"] = out.pop("timestamp")
    out["producer"] = out.pop("source")
    if out.get("type") == "stage.progress":
        payload = dict(out.get("payload") or {})
        if "progress" in payload:
            payload["progress"] = round(float(payload["progress"]) * 100, 4)
        for old, new in (
            ("step", "current_step"),
            ("steps", "total_steps"),
            ("done", "completed_steps"),
        ):
            if old in payload:
                payload[new] = payload.pop(old)
        out["payload"] = payload
    out["schema_version"] = 2
    return out


UPCASTERS: dict[int, Callable[[RawEvent], RawEvent]] = {1: upcast_v1_v2}


def upcast(event: RawEvent) -> RawEvent:
    """Chain upcasters until the event is at SCHEMA_VERSION.

    Raises UnknownSchemaVersion when the version is missing, not an integer, or one no
    upcaster (and not the current version) knows.
    """
    version = event.get("schema_version")
    if type(version) is not int:
        raise UnknownSchemaVersion(f"schema_version must be an integer, got {version!r}")
    while version != SCHEMA_VERSION:
        step = UPCASTERS.get(version)
        if step is None:
            raise UnknownSchemaVersion(
                f"schema_version {version} is not known (this code reads 1..{SCHEMA_VERSION})"
            )
        event = step(event)
        version = event["schema_version"]
    return event

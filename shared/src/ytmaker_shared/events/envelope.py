"""The one envelope every event on every topic carries."""

from __future__ import annotations

import builtins
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import orjson
import uuid6
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from ytmaker_shared.stages import Stage

#: The envelope version this code writes; `upcasting` brings older ones up to it.
SCHEMA_VERSION = 2


def new_event_id() -> str:
    """A UUIDv7 string: unique, and sortable by the time it was made."""
    return str(uuid6.uuid7())


def uuid7_millis(value: str) -> int | None:
    """The time (ms since the epoch) a UUIDv7 id such as `new_event_id` makes was made, or
    None for any other string."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    return parsed.int >> 80


def derived_event_id(millis: int, seed: str) -> str:
    """A UUIDv7 string for `millis` whose other bits come from `seed`: every process that
    derives an event from the same facts gives it the same id, so consumers that deduplicate
    on `event_id` (the fold) see one event however many wrote it."""
    bits = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10], "big")
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | (bits >> 68) << 64  # rand_a: 12 bits
    value |= 0b10 << 62 | bits & (2**62 - 1)  # variant, rand_b: 62 bits
    return str(uuid.UUID(int=value))


def utcnow() -> datetime:
    return datetime.now(UTC)


E = TypeVar("E", bound="Envelope")


class Frozen(BaseModel):
    """Base of every contract model: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


#: Longest free text in an event (a message, a reason).
TEXT_MAX_LENGTH = 4000
#: Largest JSON object an event carries as a result or error details, in bytes: it travels in
#: every progress update of the task, which must fit one of the fold's record batches.
DETAILS_MAX_BYTES = 16 * 1024


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    try:
        size = len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError) as exc:  # e.g. an integer beyond 64 bits
        raise ValueError(f"not a JSON object this system can carry: {exc}") from None
    if size > DETAILS_MAX_BYTES:
        raise ValueError(f"{size} bytes of JSON: at most {DETAILS_MAX_BYTES} are allowed")
    return value


#: Free text of bounded length, and a JSON object of bounded size.
Text = Annotated[str, Field(max_length=TEXT_MAX_LENGTH)]
SmallJson = Annotated[dict[str, Any], AfterValidator(_small_json)]

#: Longest task id: also what keeps internal keys of task-keyed topics apart from task ids.
TASK_ID_MAX_LENGTH = 64
#: Longest id of anything else (an event, a project, a correlation), and of an owner.
ID_MAX_LENGTH = 64
OWNER_MAX_LENGTH = 128


class Envelope(Frozen):
    """The fields every event shares; subclasses fix `type` and type the `payload`."""

    event_id: str = Field(default_factory=new_event_id, min_length=1, max_length=ID_MAX_LENGTH)
    type: str
    schema_version: int = SCHEMA_VERSION
    task_id: str = Field(min_length=1, max_length=TASK_ID_MAX_LENGTH)
    project_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH)
    owner: str = Field(min_length=1, max_length=OWNER_MAX_LENGTH)
    stage: Stage | None = None
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str = Field(min_length=1, max_length=200)
    correlation_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH)
    causation_id: str | None = Field(default=None, max_length=ID_MAX_LENGTH)
    payload: Any

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must carry a time zone (RFC 3339)")
        return value.astimezone(UTC)

    def caused(self, event_type: builtins.type[E], /, **fields: Any) -> E:
        """A new event of `event_type` in the same run, caused by this one.

        Copies task, project, owner and correlation; `causation_id` is this event's id. The
        caller gives `producer`, `payload` and, for stage events, `stage`.
        """
        inherited: dict[str, Any] = {
            "task_id": self.task_id,
            "project_id": self.project_id,
            "owner": self.owner,
            "correlation_id": self.correlation_id,
            "causation_id": self.event_id,
        }
        return event_type(**(inherited | fields))

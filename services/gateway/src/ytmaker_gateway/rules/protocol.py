"""The WebSocket protocol (docs/protocol.md "WebSocket"), as pure functions: client frames in,
server frames out.

Every server message is `{"type", "task_id", "offset", "payload"}`. Client messages are
`{"action": ...}` (or `{"type": "ping"}`); `parse_client_message` validates one frame and
raises `ProtocolError` with a stable code for anything else, which the caller answers with an
`error` message while the connection stays open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from ytmaker_gateway.rules.ids import MAX_OFFSET, SHOWN, is_offset, is_uuid
from ytmaker_gateway.rules.position import FRESH, StreamPosition
from ytmaker_shared.events import CONTROL_ACTIONS, ControlAction
from ytmaker_shared.progress import ProgressUpdate, TaskState

Action = Literal["subscribe", "unsubscribe", "ping", "pong"] | ControlAction
ACTIONS: frozenset[str] = frozenset({"subscribe", "unsubscribe", "ping", "pong"} | CONTROL_ACTIONS)
MAX_REASON = 1000
MAX_EPOCH = 200
#: The fields each action takes; any other field is refused (`invalid_field`).
FIELDS: dict[str, frozenset[str]] = {
    "subscribe": frozenset({"action", "task_id", "since", "epoch"}),
    "unsubscribe": frozenset({"action", "task_id"}),
    **dict.fromkeys(CONTROL_ACTIONS, frozenset({"action", "task_id", "reason"})),
    "ping": frozenset({"action", "type"}),
    "pong": frozenset({"action", "type", "timestamp"}),
}

# Close codes (RFC 6455 §7.4 and the application range 4000-4999).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401  # no, a bad or an expired token
CLOSE_FORBIDDEN = 4403
CLOSE_HEARTBEAT_TIMEOUT = 4408
CLOSE_TOO_MANY_CONNECTIONS = 4429

#: The subprotocol of this protocol, selected when a client offers it: a browser fails a
#: connection whose server selects none of the subprotocols it offered.
SUBPROTOCOL = "ytmaker.v1"
#: An offered subprotocol `bearer.<JWT>` carries the token: a browser cannot set a WebSocket's
#: Authorization header, and a URL ends up in logs (decision 0133). Never selected.
BEARER_SUBPROTOCOL = "bearer."


def selected_subprotocol(offered: Sequence[str]) -> str | None:
    """The subprotocol to select among those a client offered: ours, or none (RFC 6455 lets
    a server select none; whether to go on then is the client's choice)."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def offered_token(offered: Sequence[str]) -> str | None:
    """The token of the first `bearer.<JWT>` subprotocol offered; None if none is."""
    for name in offered:
        if name.startswith(BEARER_SUBPROTOCOL):
            return name[len(BEARER_SUBPROTOCOL) :]
    return None


class ProtocolError(ValueError):
    """A client frame that is not a valid message: `code` for programs, text for people."""

    def __init__(self, code: str, message: str, task_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.task_id = task_id


@dataclass(frozen=True)
class ClientMessage:
    action: Action
    task_id: str | None = None
    #: A subscribe's `since` and `epoch`.
    position: StreamPosition = FRESH
    reason: str = ""
    #: A pong's echo of the `timestamp` of the ping it answers (None: not echoed).
    timestamp: float | None = None


def parse_client_message(frame: str | bytes) -> ClientMessage:
    """Validate one client frame; raises ProtocolError (`invalid_frame`, `invalid_json`,
    `invalid_message`, `unknown_action`, `missing_field`, `invalid_field`) and nothing else,
    whatever the frame holds (docs/decisions/0041-strict-input-at-the-gateway.md)."""
    if not isinstance(frame, str):
        raise ProtocolError("invalid_frame", "send each message as a text frame of JSON")
    try:
        raw = orjson.loads(frame)  # nesting and number size bounded; never a RecursionError
    except Exception as exc:  # orjson raises JSONDecodeError; anything else is bad input too
        raise ProtocolError("invalid_json", f"the frame is not JSON: {str(exc)[:120]}") from None
    return client_message(raw)


def client_message(raw: object) -> ClientMessage:
    """Validate one decoded client message (what `parse_client_message` does after the JSON,
    for a transport that decodes it itself: Socket.IO); raises ProtocolError and nothing else,
    whatever it holds. Only the fields a message takes are looked into: an unknown one is
    refused by name, however deep or odd its value (never encoded again)."""
    if not isinstance(raw, dict):
        raise ProtocolError("invalid_message", "a message is a JSON object")
    action = raw.get("action", raw.get("type"))
    if action is None:
        raise ProtocolError("missing_field", "a message needs an 'action'")
    if not isinstance(action, str) or action not in ACTIONS:
        shown = action[:SHOWN] if isinstance(action, str) else type(action).__name__
        raise ProtocolError("unknown_action", f"unknown action {shown!r}")
    task_id = raw.get("task_id") if is_uuid(raw.get("task_id")) else None
    unknown = sorted(str(k)[:SHOWN] for k in raw if k not in FIELDS[action])
    if unknown:
        raise ProtocolError(
            "invalid_field", f"unknown field(s) for '{action}': {', '.join(unknown[:5])}", task_id
        )
    if action == "ping":
        return ClientMessage("ping")
    if action == "pong":
        return ClientMessage("pong", timestamp=_timestamp(raw))
    task_id = _task_id(raw)
    if action == "subscribe":
        position = StreamPosition(_since(raw, task_id), _epoch(raw, task_id))
        return ClientMessage("subscribe", task_id, position)
    if action == "unsubscribe":
        return ClientMessage("unsubscribe", task_id)
    reason = raw.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise ProtocolError("invalid_field", "'reason' is a string of at most 1000", task_id)
    return ClientMessage(action, task_id, reason=reason)  # type: ignore[arg-type]


def _task_id(raw: dict[str, Any]) -> str:
    task_id = raw.get("task_id")
    if task_id is None or task_id == "":
        raise ProtocolError("missing_field", f"'{raw.get('action')}' needs a 'task_id'")
    if not is_uuid(task_id):
        raise ProtocolError(
            "invalid_field", "'task_id' is a task id as the system issues them (a lowercase UUID)"
        )
    return str(task_id)


def _since(raw: dict[str, Any], task_id: str) -> int | None:
    since = raw.get("since")
    if since is None:
        return None
    if not is_offset(since):
        raise ProtocolError(
            "invalid_field", f"'since' is an offset (integer -1 … {MAX_OFFSET}) or null", task_id
        )
    return int(since)


def _timestamp(raw: dict[str, Any]) -> float | None:
    timestamp = raw.get("timestamp")
    if timestamp is None:
        return None
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise ProtocolError("invalid_field", "'timestamp' is the number the ping carried, or null")
    return timestamp


def _epoch(raw: dict[str, Any], task_id: str) -> str | None:
    epoch = raw.get("epoch")
    if epoch is None:
        return None
    if not isinstance(epoch, str) or len(epoch) > MAX_EPOCH:
        raise ProtocolError(
            "invalid_field", f"'epoch' is a string of at most {MAX_EPOCH} or null", task_id
        )
    return epoch


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def message(
    type_: str, payload: dict[str, Any], task_id: str | None = None, offset: int | None = None
) -> str:
    """One server message as JSON text (orjson: every update is encoded here once)."""
    return orjson.dumps(
        {"type": type_, "task_id": task_id, "offset": offset, "payload": payload},
        default=str,
        option=orjson.OPT_NON_STR_KEYS,
    ).decode()


def error_message(code: str, text: str, task_id: str | None = None, **details: Any) -> str:
    return message("error", {"code": code, "message": text, "details": details}, task_id)


def update_payload(update: ProgressUpdate, offset: int, epoch: str | None) -> dict[str, Any]:
    """What a client sees of one update: the task's whole state with its offset and epoch,
    plus the pipeline event that caused it."""
    state = update.state.model_dump(mode="json")
    state["offset"] = offset
    state["epoch"] = epoch
    state["event_id"] = update.event_id
    state["event_type"] = update.event_type
    state["occurred_at"] = update.occurred_at.isoformat()
    return state


_STATE_SERIALIZER = TaskState.__pydantic_serializer__
_FILLED_BY_READERS = {"offset": True, "epoch": True}


def update_message(update: ProgressUpdate, offset: int, epoch: str | None) -> str:
    """The `progress` / `status` / `error` message of one update (docs/protocol.md "Server
    messages"): the same JSON as `message(type, update_payload(...))`, written in one pass (the
    state serialised by pydantic, the few added fields spliced after it), because every replayed
    update pays it (docs/decisions/0040-paged-replay.md)."""
    state = _STATE_SERIALIZER.to_json(update.state, exclude=_FILLED_BY_READERS)
    added = orjson.dumps(
        {
            "offset": offset,
            "epoch": epoch,
            "event_id": update.event_id,
            "event_type": update.event_type,
            "occurred_at": update.occurred_at.isoformat(),
        }
    )
    head = orjson.dumps({"type": str(update.type), "task_id": update.task_id, "offset": offset})
    # `{"type":…,"offset":N` + `,"payload":` + `{state…` + `,` + `"offset":N,…}` + `}`; a state
    # always has fields, so its `{…}` continues with a comma.
    return b"".join((head[:-1], b',"payload":', state[:-1], b",", added[1:], b"}")).decode()


def state_payload(state: dict[str, Any], epoch: str | None) -> dict[str, Any]:
    return {**state, "epoch": state.get("epoch") or epoch}

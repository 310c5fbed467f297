"""The client side of the gateway's WebSocket protocol (docs/protocol.md), without I/O.

- `parse` turns a server frame into a `ServerMessage`; the `*_frame` functions make client
  frames.
- `Backoff`: the delay before reconnect attempt n (1, 2, 4 … capped at 30 s, with jitter).
- `Liveness`: when to send a heartbeat and when a silent connection is dead.
- `Cursor`: one subscription's position in its task's log, the rule that makes delivery
  exact across reconnects: resume with the last offset delivered, deliver an update only when
  its offset is above it.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ytmaker_client.models import Snapshot, Update, UpdateType, task_state

#: Server message types that carry an update of a task's log (with an offset).
UPDATE_TYPES = frozenset({"progress", "status", "error"})

CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_HEARTBEAT_TIMEOUT = 4408

#: Refusals of a subscription that are worth asking again (docs/protocol.md: `unavailable` is
#: retryable; the others are a limit of the moment or a replay that failed).
#: `too_many_subscriptions` is not: asked again on the same connection it can only be refused
#: again, and the gateway closes a connection after a few limit errors in a row (decision 0135).
RETRYABLE_REFUSALS = frozenset({"unavailable", "replay_failed", "rate_limited"})

#: Subscribes and unsubscribes go out paced (decision 0135): at most this many subscribes
#: waiting for their answer (the gateway closes a connection with 1008 after more than
#: `YTMAKER_MAX_VIOLATIONS`, 5, limit errors in a row, and may read that many before it
#: answers them) ...
SUBSCRIBES_IN_FLIGHT = 4
#: ... and at most this many a second (its rate limit is 50 messages a second, in a burst of
#: at most 50: a resume of 100 subscriptions at once was closed with 1008), or half the rate
#: its greeting announces when that is lower (`subscription_frames_per_second`).
SUBSCRIPTION_FRAMES_PER_SECOND = 25.0
#: The slowest pace a greeting can set: a frame every 2 s.
SLOWEST_SUBSCRIPTION_FRAMES_PER_SECOND = 0.5


def subscription_frames_per_second(greeting: ServerMessage) -> float:
    """The pace of subscription frames on the connection `greeting` opened: half the
    `limits.messages_per_second` it announces (pings, pongs and controls share the rate), at
    most SUBSCRIPTION_FRAMES_PER_SECOND, at least SLOWEST_SUBSCRIPTION_FRAMES_PER_SECOND; the
    most without the field (a gateway from before it) or with one that is not a rate."""
    limits = greeting.payload.get("limits")
    rate = limits.get("messages_per_second") if isinstance(limits, dict) else None
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        return SUBSCRIPTION_FRAMES_PER_SECOND
    if not math.isfinite(rate) or rate <= 0:
        return SUBSCRIPTION_FRAMES_PER_SECOND
    half = rate / 2
    return min(SUBSCRIPTION_FRAMES_PER_SECOND, max(SLOWEST_SUBSCRIPTION_FRAMES_PER_SECOND, half))


#: The longest client id kept for `old_client_id` (the gateway's: `c-` and 32 hex digits).
LONGEST_CLIENT_ID = 128


def client_id(greeting: ServerMessage) -> str | None:
    """The `client_id` a greeting gives the connection, for the next one's `old_client_id`;
    None when it is not a short string (nothing to restore then)."""
    value = greeting.payload.get("client_id")
    if isinstance(value, str) and 0 < len(value) <= LONGEST_CLIENT_ID:
        return value
    return None


def restored_tasks(greeting: ServerMessage) -> frozenset[str]:
    """The tasks whose streams the gateway restores (`reconnected.subscribed`); none for a
    `connected`, or where the list is not a list of strings."""
    tasks = greeting.payload.get("subscribed") if greeting.type == "reconnected" else None
    if not isinstance(tasks, list):
        return frozenset()
    return frozenset(t for t in tasks if isinstance(t, str))


class ProtocolViolation(ValueError):
    """A server frame that is not a message of the protocol."""


@dataclass(frozen=True)
class ServerMessage:
    type: str
    task_id: str | None
    offset: int | None
    payload: dict[str, Any]

    @property
    def is_update(self) -> bool:
        """An update of a task's log; an `error` without an offset is a refusal instead."""
        return self.type in UPDATE_TYPES and self.offset is not None and self.task_id is not None

    @property
    def error_code(self) -> str:
        return str(self.payload.get("code", ""))

    @property
    def error_details(self) -> dict[str, Any]:
        """An error's `details` (an object; anything else reads as none)."""
        details = self.payload.get("details")
        return details if isinstance(details, dict) else {}


def parse(frame: str | bytes) -> ServerMessage:
    """One server frame; raises ProtocolViolation."""
    try:
        raw = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolViolation(f"not JSON: {exc}") from None
    except RecursionError:
        raise ProtocolViolation("JSON nested too deep") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ProtocolViolation("a message is an object with a 'type'")
    task_id, offset, payload = raw.get("task_id"), raw.get("offset"), raw.get("payload") or {}
    if task_id is not None and not isinstance(task_id, str):
        raise ProtocolViolation("'task_id' is a string or null")
    if offset is not None and (type(offset) is not int or offset < 0):
        raise ProtocolViolation("'offset' is an integer of at least 0, or null")
    if not isinstance(payload, dict):
        raise ProtocolViolation("'payload' is an object")
    return ServerMessage(raw["type"], task_id, offset, payload)


def to_update(msg: ServerMessage) -> Update:
    """The `Update` of an update message; raises ProtocolViolation."""
    assert msg.offset is not None and msg.task_id is not None
    try:
        state = task_state(msg.payload)
    except ValidationError as exc:
        raise ProtocolViolation(f"an update without a valid state: {exc.errors()[:2]}") from None
    return Update(
        type=UpdateType(msg.type),
        task_id=msg.task_id,
        offset=msg.offset,
        epoch=_str_or_none(msg.payload.get("epoch")),
        event_id=str(msg.payload.get("event_id", "")),
        event_type=str(msg.payload.get("event_type", "")),
        occurred_at=_time(msg.payload.get("occurred_at")),
        state=state,
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def subscribe_frame(task_id: str, since: int | None, epoch: str | None) -> str:
    body: dict[str, Any] = {"action": "subscribe", "task_id": task_id, "since": since}
    if epoch is not None:
        body["epoch"] = epoch
    return json.dumps(body)


def unsubscribe_frame(task_id: str) -> str:
    return json.dumps({"action": "unsubscribe", "task_id": task_id})


PING_FRAME = '{"type": "ping"}'


def pong_frame(ping: ServerMessage) -> str:
    """The answer to the server's `ping`, echoing its `timestamp`: that names the ping
    answered, so the server resumes a restored session from exactly what came before it."""
    timestamp = ping.payload.get("timestamp")
    if (
        isinstance(timestamp, int | float)
        and not isinstance(timestamp, bool)
        and math.isfinite(timestamp)  # Python's JSON reads NaN; the gateway's does not
    ):
        return json.dumps({"action": "pong", "timestamp": timestamp})
    return '{"action": "pong"}'  # nothing to echo: answers the oldest ping not answered


@dataclass
class Backoff:
    """Delays between reconnect attempts: `base × factor^(n-1)`, at most `cap`, each reduced
    by a random fraction up to `jitter` (so that many clients dropped at once do not come
    back at once). `max_attempts` None: try for ever."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5
    max_attempts: int | None = None
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base or not 0 <= self.jitter < 1:
            raise ValueError("backoff needs base > 0, factor ≥ 1, cap ≥ base, 0 ≤ jitter < 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts is at least 1 (or None: for ever)")

    def exhausted(self, attempt: int) -> bool:
        """Whether reconnect attempt `attempt` (1-based) is one too many."""
        return self.max_attempts is not None and attempt > self.max_attempts

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt `attempt` (1-based)."""
        nominal = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        return nominal * (1.0 - self.jitter * self.rng.random())


@dataclass
class Liveness:
    """The client's heartbeat: a ping every `interval` seconds of quiet on our side (the
    gateway counts any client message as life, docs/protocol.md), and the connection counts as
    dead after `timeout` seconds without any message from the server (its `pong` answers
    our ping, so a healthy server is never silent that long)."""

    interval: float = 15.0
    timeout: float = 40.0
    last_received: float = 0.0
    last_sent: float = 0.0

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= self.interval:
            raise ValueError("heartbeat needs interval > 0 and timeout > interval")

    def start(self, now: float) -> None:
        self.last_received = self.last_sent = now

    def received(self, now: float) -> None:
        self.last_received = now

    def sent(self, now: float) -> None:
        self.last_sent = now

    def ping_due(self, now: float) -> bool:
        return now - self.last_sent >= self.interval

    def dead(self, now: float) -> bool:
        return now - self.last_received > self.timeout

    def next_check(self, now: float) -> float:
        """Seconds until something may be due."""
        until_ping = self.interval - (now - self.last_sent)
        until_dead = self.timeout - (now - self.last_received)
        return max(0.01, min(until_ping, until_dead))


@dataclass
class Cursor:
    """One subscription's position in its task's log.

    `since` is what the caller asked first (-1: the whole run, None: the current state, an
    offset: what comes after it). Once something is delivered, every (re)subscribe asks for
    what comes after `last`, with the `epoch` the gateway named, and only offsets above
    `last` are delivered: nothing twice, nothing skipped without a `Snapshot` that says so.
    """

    since: int | None = -1
    epoch: str | None = None
    last: int | None = None
    recovered: bool = True
    snapshot_due: bool = False
    asked: int | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.since < -1:
            raise ValueError("since is -1 (the whole run), None (a snapshot) or an offset ≥ 0")

    def request(self) -> tuple[int | None, str | None]:
        """`since` and `epoch` of the next subscribe (remembered as `asked`)."""
        self.asked = self.last if self.last is not None else self.since
        return self.asked, self.epoch

    def subscribed(self, payload: dict[str, Any]) -> None:
        """The gateway's `subscribed` answer to our (re)subscribe. Another epoch than the one
        of `last` means a recreated log, whose offsets start again: `last` is forgotten (the
        gateway then sends a snapshot, `recovered: false`). With `recovered: false` the stream
        starts again after the offset `subscribed` names, whatever `last` was (also where
        `last` had no epoch to compare): null, the new log's start, so a resume before any
        update asks for all of it."""
        epoch = payload.get("epoch")
        if epoch is not None:
            if self.epoch is not None and str(epoch) != self.epoch:
                self.last = None
            self.epoch = str(epoch)
        self.recovered = bool(payload.get("recovered", True))
        self.snapshot_due = not self.recovered
        if not self.recovered:
            after = payload.get("offset")
            self.last = after if type(after) is int and after >= 0 else None
            if self.last is None:
                self.since = -1

    def takes_restored(self, payload: dict[str, Any]) -> bool:
        """Whether the stream the gateway restored for `old_client_id` (a `subscribed` with
        `restored: true`) resumes this cursor exactly, so that it need not subscribe again
        (decision 0141): recovered, in our epoch (or neither has one), continuing after an
        offset at or before our position (`last`, or the offset the caller asked to start
        after). What it repeats up to the position is then dropped by `accept`. False:
        subscribe ourselves, which replaces it."""
        after = payload.get("offset")
        position = self.last if self.last is not None else self.since
        if (
            payload.get("recovered") is not True
            or payload.get("epoch") != self.epoch  # both None: a gateway without epochs
            or position is None
            or type(after) is not int
            or not 0 <= after <= position
        ):
            return False
        self.last = position
        return True

    def snapshot(self, msg: ServerMessage) -> Snapshot:
        """The `Snapshot` to deliver for a `snapshot` message; moves past its offset."""
        state = None
        try:
            state = task_state(msg.payload) if msg.payload else None
        except ValidationError:
            state = None
        offset = msg.offset if msg.offset is not None else (state.offset if state else None)
        due, self.snapshot_due = self.snapshot_due, False
        # The stream starts again from the snapshot that answers `recovered: false`: the
        # gateway could not replay after `last` (an offset beyond the end of a recreated log
        # is lower afterwards). One nobody asked for only moves it on: moved back, what
        # follows it would be delivered twice.
        if offset is not None and (due or self.last is None or offset > self.last):
            self.last = offset
        if state is not None and state.epoch:
            self.epoch = state.epoch
        return Snapshot(
            task_id=msg.task_id or (state.task_id if state else ""),
            offset=offset,
            epoch=self.epoch,
            state=state,
            recovered=self.recovered,
            requested_since=self.asked,
        )

    def missing_snapshot(self, task_id: str) -> Snapshot | None:
        """Where `subscribed` said `recovered: false` and the gateway had no state to send,
        the first update comes without a snapshot: the caller still learns that the replay
        was not complete. None when nothing is owed."""
        if not self.snapshot_due:
            return None
        self.snapshot_due = False
        return Snapshot(task_id, None, self.epoch, None, False, self.asked)

    def accept(self, update: Update) -> bool:
        """Whether to deliver `update` (its offset is above the last delivered)."""
        if self.last is not None and update.offset <= self.last:
            return False
        self.last = update.offset
        if update.epoch:
            self.epoch = update.epoch
        return True

"""The rules one client connection lives by, as a pure object: the caller passes the time and
what it saw, the rules answer what to do; nothing here reads a socket, sleeps or counts a
metric (after python-websockets' Sans-I/O protocol: the decisions here, the glue in
api/ws.py and sio/client.py). docs/protocol.md "Errors and limits" tells clients what they are.

- a token bucket of `max_messages_per_second`, holding one second's worth; a message within
  it forgives the broken limits before it;
- broken limits (`violation`) are answered with an error while they are few, and close the
  connection (1008) once there are more than `max_violations` in a row;
- a frame over `max_frame_bytes` closes the connection (1009);
- heartbeat silence: a client heard of nothing for two heartbeat intervals is closed (4408),
  except that a client that keeps reading a replay is alive too;
- at most `max_subscriptions` subscriptions (a re-subscribe to a task held is not one more);
- a project stream (`/projects/{id}/progress`) takes `ping` and `pong` only.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ytmaker_gateway.rules.protocol import CLOSE_POLICY, CLOSE_TOO_BIG

#: What a project stream takes from its client.
PROJECT_STREAM_ACTIONS = frozenset({"ping", "pong"})


@dataclass(frozen=True)
class SessionLimits:
    max_messages_per_second: float
    max_violations: int
    max_subscriptions: int
    heartbeat_interval_s: float
    max_frame_bytes: int

    @classmethod
    def of(cls, settings: Any) -> SessionLimits:
        """The limits of a GatewaySettings (or anything with the same fields)."""
        return cls(
            max_messages_per_second=settings.max_messages_per_second,
            max_violations=settings.max_violations,
            max_subscriptions=settings.max_subscriptions,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            max_frame_bytes=settings.max_frame_bytes,
        )

    def announced(self) -> dict[str, float | int]:
        """The limits a greeting tells its client (`connected.limits`), so that an SDK paces
        itself under this gateway's own rather than under the defaults."""
        return {
            "messages_per_second": self.max_messages_per_second,
            "subscriptions": self.max_subscriptions,
        }


@dataclass(frozen=True)
class Refuse:
    """Answer with an `error` message (`code`, `text`); the connection stays."""

    code: str
    text: str


@dataclass(frozen=True)
class Close:
    """Close the connection with `code` and `reason`; `kind` is the bad-input kind to count."""

    code: int
    reason: str
    kind: str


#: What the rules say of a message: go on (None), refuse it, or close.
Verdict = Refuse | Close | None


class SessionRules:
    """One connection's rules. `now` is `time.monotonic()` for the rate and wall-clock
    `time.time()` for heartbeats, as long as each caller keeps to one clock per method."""

    def __init__(
        self, limits: SessionLimits, *, now: float, rate_now: float, project_stream: bool = False
    ) -> None:
        self.limits = limits
        self.project_stream = project_stream
        #: When the client was last heard of (wall clock).
        self.last_heard = now
        self.violations = 0
        self._tokens = limits.max_messages_per_second
        self._refilled = rate_now
        self._sent_at_beat = 0
        self._backlog_at_beat = 0

    # --- messages ------------------------------------------------------------------------

    def received(self, size: int, *, now: float, rate_now: float) -> Verdict:
        """A frame of `size` bytes arrived (at `now`, wall clock; `rate_now`, monotonic):
        Close (1009) when it is too large, a `rate_limited` violation when it comes too soon,
        else None (handle it)."""
        self.last_heard = now
        if size > self.limits.max_frame_bytes:
            return Close(CLOSE_TOO_BIG, "frame too large", "oversize")
        if not self.within_rate(rate_now):
            return self.violation("rate_limited", "too many messages per second")
        return None

    def within_rate(self, now: float) -> bool:
        """Take a token of the bucket (`now`: monotonic); False when there is none. A message
        within the rate forgives the violations before it."""
        rate = self.limits.max_messages_per_second
        self._tokens = min(rate, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        self.violations = 0
        return True

    def violation(self, code: str, text: str) -> Refuse | Close:
        """Count a broken limit: Refuse while they are few, Close (1008) past
        `max_violations` in a row."""
        self.violations += 1
        if self.violations > self.limits.max_violations:
            return Close(CLOSE_POLICY, f"{code}: closing", code)
        return Refuse(code, text)

    def accepts(self, action: str) -> bool:
        """Whether this connection takes `action` at all (a project stream: pings only)."""
        return not self.project_stream or action in PROJECT_STREAM_ACTIONS

    def may_subscribe(self, task_id: str, subscribed: Collection[str]) -> bool:
        """Whether one more subscription to `task_id` fits beside `subscribed` (a task held
        already is a re-subscribe, never one too many)."""
        return task_id in subscribed or len(subscribed) < self.limits.max_subscriptions

    # --- heartbeats ----------------------------------------------------------------------

    def beat(self, now: float, *, sent: int, replaying: bool, backlog: int | None = None) -> bool:
        """Called once every heartbeat interval with the number of messages written so far,
        whether a replay runs and, if the server tells, the bytes written that the client
        has not taken yet (`backlog`); True when the client has been silent for two intervals
        and must be closed (4408). A client still reading is alive, whatever its silence:
        our ping waits behind what it has not read. It is reading when it took more than one
        message of a running replay since the last beat (a dead one stalls the replay once
        the buffers fill), or when the backlog shrank (a replay's end, written ahead into the
        socket's buffers, can take many intervals to read at a slow client's pace)."""
        interval = self.limits.heartbeat_interval_s
        reading = replaying and sent > self._sent_at_beat + 1
        draining = backlog is not None and 0 < backlog < self._backlog_at_beat
        self._sent_at_beat = sent
        self._backlog_at_beat = backlog or 0
        if reading or draining:
            self.last_heard = max(self.last_heard, now - interval)
        return now - self.last_heard > 2 * interval

"""How the live client behaves: reconnects, heartbeat, timeouts. Every field has a sensible
default; tests and impatient scripts shorten them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ytmaker_client.protocol import Backoff, Liveness


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class StateChange:
    """What a connection-state listener gets. `channel` names the socket (`tasks` for the
    client's own, `project:<id>` for a project subscription's); `attempt` and `delay` are
    set while reconnecting; `reason` says why the previous connection ended."""

    state: ConnectionState
    channel: str
    attempt: int = 0
    delay: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class ClientOptions:
    """Reconnect: `backoff_base` × 2^(n-1) seconds, at most `backoff_cap`, each delay reduced
    by a random fraction up to `backoff_jitter`; `max_attempts` None tries for ever. The
    count starts again after a connection that delivered an update or stayed up for
    `stable_after` seconds.
    Heartbeat: a ping after `heartbeat_interval` seconds without sending; a connection
    silent for `heartbeat_timeout` seconds is dropped and re-made.
    A subscription refused as `forbidden` is asked again for `refusal_window` seconds (a
    task created a moment ago may not be known to every gateway replica yet); retryable
    refusals (`unavailable`, ...) are asked again every `retry_delay` seconds."""

    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    backoff_jitter: float = 0.5
    max_attempts: int | None = None
    stable_after: float = 10.0
    heartbeat_interval: float = 15.0
    heartbeat_timeout: float = 40.0
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    refusal_window: float = 15.0
    retry_delay: float = 1.0
    http_timeout: float = 30.0

    def __post_init__(self) -> None:
        # Refused here, where the caller sees it, not in the connection's background task.
        self.backoff()
        self.liveness()

    def backoff(self) -> Backoff:
        return Backoff(
            base=self.backoff_base,
            cap=self.backoff_cap,
            jitter=self.backoff_jitter,
            max_attempts=self.max_attempts,
        )

    def liveness(self) -> Liveness:
        return Liveness(interval=self.heartbeat_interval, timeout=self.heartbeat_timeout)

"""The WebSocket (and Socket.IO) messages of docs/protocol.md as pydantic models: the contract the
clients are generated from (shared/schemas/gateway.schema.json, `python -m
ytmaker_gateway.schema`).

The gateway builds its messages with `protocol.message()` for speed; these models describe
them, and a test validates every message a real session receives against them, so the schema
cannot drift from what is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ytmaker_shared.events import ControlAction
from ytmaker_shared.progress import TaskState


class Open(BaseModel):
    """Messages may grow fields; clients must ignore the ones they do not know."""

    model_config = ConfigDict(extra="allow")


class UpdatePayload(TaskState):
    """A `progress` / `status` / `error` update: the task's whole state at `offset`, plus the
    pipeline event that caused it."""

    event_id: str
    event_type: str
    occurred_at: datetime


class Limits(Open):
    """What one connection may ask of this gateway (docs/protocol.md "Errors and limits"): a
    client that keeps under them is never refused for its pace or its count."""

    messages_per_second: float = Field(description="Messages a second, a second's burst.")
    subscriptions: int = Field(description="Tasks subscribed at once on one connection.")


class ConnectedPayload(Open):
    client_id: str
    heartbeat_interval: float
    server_time: str | None = None
    limits: Limits | None = Field(default=None, description="Absent from older gateways.")
    restored: bool | None = None
    # Socket.IO only: the recovery session id, and what was recovered.
    pid: str | None = None
    recovered: bool | None = None


class ReconnectedPayload(Open):
    client_id: str
    old_client_id: str
    subscribed: list[str]
    heartbeat_interval: float
    server_time: str | None = None
    limits: Limits | None = Field(default=None, description="Absent from older gateways.")


class SubscribedPayload(Open):
    task_id: str
    offset: int | None = Field(description="The offset the stream continues after.")
    epoch: str | None
    recovered: bool
    restored: bool = False


class UnsubscribedPayload(Open):
    task_id: str


class AckPayload(Open):
    task_id: str
    action: ControlAction
    accepted: bool
    event_id: str


class ErrorPayload(Open):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class TimestampPayload(Open):
    timestamp: float


class InitialPayload(Open):
    project_id: str
    state: TaskState | None


class Envelope(Open):
    """Every server message: `{type, task_id, offset, payload}`."""

    task_id: str | None
    offset: int | None


class ConnectedMessage(Envelope):
    """The first message of a socket."""

    type: Literal["connected"]
    payload: ConnectedPayload


class ReconnectedMessage(Envelope):
    """The server restored the session of `old_client_id`."""

    type: Literal["reconnected"]
    payload: ReconnectedPayload


class SubscribedMessage(Envelope):
    """The answer to a subscribe."""

    type: Literal["subscribed"]
    payload: SubscribedPayload


class SnapshotMessage(Envelope):
    """The task's state, when `recovered` is false."""

    type: Literal["snapshot"]
    payload: TaskState


class ProgressMessage(Envelope):
    """An update of the task's progress."""

    type: Literal["progress"]
    payload: UpdatePayload


class StatusMessage(Envelope):
    """An update that changed the task's status."""

    type: Literal["status"]
    payload: UpdatePayload


class ErrorMessage(Envelope):
    """With an offset: an update (a stage failed or retries); without: a refused request."""

    type: Literal["error"]
    payload: UpdatePayload | ErrorPayload


class UnsubscribedMessage(Envelope):
    """The answer to an unsubscribe."""

    type: Literal["unsubscribed"]
    payload: UnsubscribedPayload


class AckMessage(Envelope):
    """A control request was accepted."""

    type: Literal["ack"]
    payload: AckPayload


class PingMessage(Envelope):
    """The server's heartbeat; answer with pong."""

    type: Literal["ping"]
    payload: TimestampPayload


class PongMessage(Envelope):
    """The answer to the client's ping."""

    type: Literal["pong"]
    payload: TimestampPayload


class InitialMessage(Envelope):
    """The project stream's first message."""

    type: Literal["initial"]
    payload: InitialPayload


ServerMessage = Annotated[
    ConnectedMessage
    | ReconnectedMessage
    | SubscribedMessage
    | SnapshotMessage
    | ProgressMessage
    | StatusMessage
    | ErrorMessage
    | UnsubscribedMessage
    | AckMessage
    | PingMessage
    | PongMessage
    | InitialMessage,
    Field(discriminator="type"),
]


class SubscribeRequest(BaseModel):
    """`since`: the last offset seen, -1 for the whole run, null for a snapshot."""

    action: Literal["subscribe"]
    task_id: str = Field(min_length=1, max_length=64)
    since: int | None = Field(default=None, ge=-1)
    epoch: str | None = None


class UnsubscribeRequest(BaseModel):
    action: Literal["unsubscribe"]
    task_id: str = Field(min_length=1, max_length=64)


class ControlMessage(BaseModel):
    action: ControlAction
    task_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=1000)


class PingRequest(BaseModel):
    """Asks the server for a `pong`."""

    action: Literal["ping"]


class PongRequest(BaseModel):
    """The answer to the server's `ping`, sent once everything before it is handled.
    `timestamp`: the ping's, echoed, which names the ping answered; without it the pong
    answers the oldest ping not yet answered."""

    action: Literal["pong"]
    timestamp: float | None = None


ClientMessage = Annotated[
    SubscribeRequest | UnsubscribeRequest | ControlMessage | PingRequest | PongRequest,
    Field(discriminator="action"),
]

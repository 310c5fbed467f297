"""Where a Socket.IO client stands in every task it joined, as the string that Socket.IO's
connection state recovery carries (docs/decisions/0061-socketio-recovery.md). Pure.

Socket.IO clients keep the last string argument of the last event they handled and send it
back on reconnect (`auth.offset`). Every event the server writes ends with the socket's whole
position vector, so that one string tells exactly what the client has, for every task:

    "1|<epoch>|<task_id>:<offset>,<task_id>:<offset>"

An offset is the last update of the task the client was sent (`-1`: nothing yet, replay from the
start of the run; `n`: nothing yet, it asked for a snapshot). The epoch (the topic id of
`progress.updates`, empty when unknown) travels with the offsets (docs/protocol.md "Offsets, epochs
and resume").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ytmaker_gateway.rules.ids import is_uuid

VERSION = "1"
MAX_TASK_ID = 64
SNAPSHOT = "n"


class BadPositions(ValueError):
    """A position string that is not one this server wrote; `str(exc)` says why."""


@dataclass
class Positions:
    epoch: str | None = None
    #: task_id → the last offset sent (`-1`: none yet, replay all; None: none yet, snapshot).
    tasks: dict[str, int | None] = field(default_factory=dict)

    def encode(self) -> str:
        entries = ",".join(
            f"{task_id}:{SNAPSHOT if offset is None else offset}"
            for task_id, offset in self.tasks.items()
        )
        return f"{VERSION}|{self.epoch or ''}|{entries}"

    def advance(self, task_id: str, offset: int) -> None:
        """The client was sent the task's update at `offset` (offsets only grow)."""
        current = self.tasks.get(task_id)
        if current is None or offset > current:
            self.tasks[task_id] = offset


def parse(text: object, max_tasks: int) -> Positions:
    """The positions a client sent back; raises BadPositions for anything malformed, too long
    or naming more than `max_tasks` tasks."""
    if not isinstance(text, str):
        raise BadPositions("the offset is not a string")
    if len(text) > max_tasks * (MAX_TASK_ID + 24) + 256:
        raise BadPositions("the offset is too long")
    version, sep, rest = text.partition("|")
    epoch, sep2, entries = rest.partition("|")
    if version != VERSION or not sep or not sep2:
        raise BadPositions("not an offset of this server")
    if len(epoch) > 200:
        raise BadPositions("the epoch is too long")
    positions = Positions(epoch or None)
    for entry in entries.split(",") if entries else []:
        task_id, sep, value = entry.rpartition(":")
        if not sep or not task_id or len(task_id) > MAX_TASK_ID:
            raise BadPositions("a task position is malformed")
        if not is_uuid(task_id):  # every id this server writes is one
            raise BadPositions("a task id is not one as the system issues them (a UUID)")
        positions.tasks[task_id] = _offset(value)
    if len(positions.tasks) > max_tasks:
        raise BadPositions("too many tasks")
    return positions


def _offset(value: str) -> int | None:
    if value == SNAPSHOT:
        return None
    if not value.lstrip("-").isdigit() or len(value) > 19:
        raise BadPositions("an offset is not an integer")
    offset = int(value)
    if offset < -1:
        raise BadPositions("an offset is below -1")
    return offset


def encodable(task_id: str) -> bool:
    """Whether a task id can stand in a position string (real ids are UUIDs)."""
    return 0 < len(task_id) <= MAX_TASK_ID and not any(c in task_id for c in ",|:")

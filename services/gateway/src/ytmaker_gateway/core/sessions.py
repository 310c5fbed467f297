"""WebSocket sessions: every connection has a client id; a reconnect with `old_client_id`
within the window restores its subscriptions after the last offset per task the client
acknowledged (docs/protocol.md "Offsets, epochs and resume";
docs/decisions/0032-gateway-sessions-across-replicas.md, 0115).

A session is looked up first in this process's memory (the replica that served it), then in
the read model (`/internal/v1/sessions` of the progress service), where every replica writes
its sessions' records: on connect, on close (with the final offsets) and, while connected, at
every checkpoint where the offsets acknowledged have moved. So any replica can restore any
session. Records are written in the background and never block a client.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol

from ytmaker_gateway.adapters.progress_api import ProgressApi, ProgressUnavailable
from ytmaker_gateway.rules.ids import is_offset

log = logging.getLogger(__name__)

_BATCH = 100  # session records per request to the read model
_SLICE = 100  # sessions checkpointed per event-loop step


def new_client_id() -> str:
    return f"c-{uuid.uuid4().hex}"


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _ts(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class LiveConnection(Protocol):
    """What a session's open connection (api/connection.py) offers the registry and the REST
    routes that act on a connected client."""

    def offsets(self) -> dict[str, int | None]:
        """task_id → the last offset the client acknowledged (-1: the whole run, None:
        nothing), per subscription."""
        ...

    def projects(self) -> list[str]:
        """The project of every subscription and stream (for the operator's views)."""
        ...

    @property
    def takes_tasks(self) -> bool:
        """False for a project stream: no task subscription is attached to it."""
        ...

    async def subscribe_from_rest(self, task_id: str, since: int | None) -> None: ...

    async def replace(self) -> None:
        """Close it for a reconnect of its client; return once its session is closed."""
        ...

    def unsubscribe(self, task_id: str) -> None: ...


@dataclass
class Session:
    client_id: str
    user: str
    address: str = ""
    user_agent: str = ""
    connected_at: float = field(default_factory=time.time)
    disconnected_at: float | None = None
    last_active_at: float = field(default_factory=time.time)
    message_count: int = 0
    #: task_id → the last offset the client acknowledged (-1: the whole run, None: nothing
    #: yet, a snapshot on restore).
    offsets: dict[str, int | None] = field(default_factory=dict)
    projects: set[str] = field(default_factory=set)
    #: The live connection while connected (its offsets are checkpointed); never serialised.
    connection: LiveConnection | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        """The read model's session record (services/progress/API.md), with `offsets`."""
        return {
            "client_id": self.client_id,
            "user": self.user,
            "connected_at": _iso(self.connected_at),
            "disconnected_at": _iso(self.disconnected_at),
            "last_active_at": _iso(self.last_active_at),
            "message_count": self.message_count,
            "address": self.address[:64],
            "user_agent": self.user_agent[:500],
            "subscriptions": sorted(self.offsets),
            "offsets": {t: o for t, o in self.offsets.items() if o is not None},
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Session | None:
        """A closed session from a read-model record; None when the record is unusable."""
        client_id, user = record.get("client_id"), record.get("user")
        subscriptions, offsets = record.get("subscriptions"), record.get("offsets") or {}
        if not isinstance(client_id, str) or not isinstance(user, str):
            return None
        if not isinstance(subscriptions, list) or not isinstance(offsets, dict):
            return None
        restored = {
            task_id: offsets.get(task_id) for task_id in subscriptions if isinstance(task_id, str)
        }
        if not all(offset is None or is_offset(offset) for offset in restored.values()):
            return None
        return cls(
            client_id=client_id,
            user=user,
            connected_at=_ts(record.get("connected_at")) or 0.0,
            disconnected_at=_ts(record.get("disconnected_at")),
            last_active_at=_ts(record.get("last_active_at")) or 0.0,
            offsets=restored,
        )


class SessionRegistry:
    """Sessions of this process, backed by the read model for the other replicas.

    `restore_wait_s`: how long a reconnect waits for another replica to record that the old
    connection closed (its final offsets) before it restores from the last checkpoint.
    """

    def __init__(
        self, window_s: float, store: ProgressApi | None = None, *, restore_wait_s: float = 2.0
    ) -> None:
        self.window_s = window_s
        self.store = store
        self.restore_wait_s = restore_wait_s
        self.active: dict[str, Session] = {}
        self._per_user: dict[str, int] = {}
        # In the order they closed, so that expiring looks only at those it forgets.
        self._closed: OrderedDict[str, Session] = OrderedDict()
        self._pending: dict[str, dict[str, Any]] = {}
        self._writer: asyncio.Task[None] | None = None

    def open(self, session: Session) -> None:
        self.active[session.client_id] = session
        self._per_user[session.user] = self._per_user.get(session.user, 0) + 1
        self.save(session)

    def close(self, session: Session) -> None:
        session.disconnected_at = time.time()
        session.connection = None
        if self.active.pop(session.client_id, None) is not None:
            left = self._per_user.get(session.user, 1) - 1
            if left > 0:
                self._per_user[session.user] = left
            else:
                self._per_user.pop(session.user, None)
        self._closed[session.client_id] = session
        self._closed.move_to_end(session.client_id)  # closed again: now the latest
        self._expire()
        self.save(session)

    def take(self, old_client_id: str, user: str) -> Session | None:
        """The closed session `old_client_id` of `user` if it ended within the window (it is
        then consumed: a session is restored once per replica)."""
        horizon = self._expire()
        session = self._closed.get(old_client_id)
        if session is None or session.user != user:
            return None
        if (session.disconnected_at or 0) < horizon:  # left by `_expire` after a clock step
            return None
        del self._closed[old_client_id]
        return session

    async def restore(self, old_client_id: str, user: str) -> Session | None:
        """`take()`; else, if the connection is still open here, that connection closed and
        its session taken over (`_take_over`); else the session as another replica recorded
        it in the read model.

        A record of a connection still open on another replica (it has not seen the drop
        yet, or died) is waited for up to `restore_wait_s`, then used as last checkpointed when
        that checkpoint is within the window. Never raises: an unreachable read model means
        no session (the client still resumes exactly with `since`)."""
        local = self.take(old_client_id, user)
        if local is None and old_client_id in self.active:
            local = await self._take_over(old_client_id, user)
        if local is not None or self.store is None or old_client_id in self.active:
            return local
        deadline = time.monotonic() + self.restore_wait_s
        while True:
            try:
                record = await self._fetch(old_client_id, user)
            except ProgressUnavailable as exc:
                log.info("session not restorable", extra={"reason": str(exc)})
                return None
            session = Session.from_record(record) if record is not None else None
            if session is None:
                return None
            now = time.time()
            if session.disconnected_at is not None:
                return session if session.disconnected_at >= now - self.window_s else None
            if time.monotonic() >= deadline:
                checkpoint = _ts(record.get("updated_at") if record else None) or 0.0
                return session if checkpoint >= now - self.window_s else None
            await asyncio.sleep(0.1)

    async def _take_over(self, client_id: str, user: str) -> Session | None:
        """The session of a connection still open here whose client reconnected: it saw the
        link die first (a half-dead link is noticed by the client's heartbeat, 40 s in the
        SDKs, before the gateway's two intervals). The old connection is closed and its
        session restored as it closed, after what the client acknowledged (decision 0141)."""
        session = self.active.get(client_id)
        if session is None or session.user != user or session.connection is None:
            return None
        try:
            await asyncio.wait_for(session.connection.replace(), self.restore_wait_s)
        except TimeoutError:
            return None
        return self.take(client_id, user)

    async def _fetch(self, client_id: str, user: str) -> dict[str, Any] | None:
        assert self.store is not None
        for record in await self.store.sessions(user=user):
            if record.get("client_id") == client_id and record.get("user") == user:
                return record
        return None

    def _expire(self) -> float:
        """Forget the closed sessions that ended before the window, oldest first, and return
        where the window starts. Each close and reconnect looks at the sessions it forgets
        and one more, not at every closed one (a thousand clients dropped at once and
        reconnecting made a million looks)."""
        horizon = time.time() - self.window_s
        while self._closed:
            oldest = next(iter(self._closed.values()))
            if (oldest.disconnected_at or 0) >= horizon:
                break
            self._closed.popitem(last=False)
        return horizon

    async def checkpoint(self) -> int:
        """Record every open session whose acknowledged offsets moved since its last record
        (what another replica restores from if this one dies); returns how many. Yields to
        the event loop every `_SLICE` sessions: a thousand clients' records are not built in
        one step that would hold their updates back."""
        saved = 0
        for n, session in enumerate(list(self.active.values()), start=1):
            if n % _SLICE == 0:
                await asyncio.sleep(0)
            if session.connection is None:
                continue
            offsets = session.connection.offsets()
            if offsets != session.offsets:
                session.offsets = offsets
                self.save(session)
                saved += 1
        return saved

    async def run_checkpoints(self, interval_s: float, stopping: asyncio.Event) -> None:
        """`checkpoint()` every `interval_s` until `stopping` is set."""
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), interval_s)
            except TimeoutError:
                await self.checkpoint()

    def save(self, session: Session) -> None:
        """Send the session's record to the read model in the background.

        One writer sends what is pending in batches, one request at a time, so the records of
        a session land in order; a newer record replaces one not yet sent."""
        if self.store is None:
            return
        self._pending[session.client_id] = session.record()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="session-records")

    async def _write(self) -> None:
        assert self.store is not None
        while self._pending:
            batch = list(islice(self._pending, _BATCH))
            records = [self._pending.pop(client_id) for client_id in batch]
            try:
                await self.store.save_sessions(records)
            except ProgressUnavailable as exc:
                log.debug("session records not stored", extra={"reason": str(exc)})

    async def drain(self) -> None:
        """Wait until every record handed to `save()` is written (or failed)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)

    def by_user(self) -> dict[str, int]:
        """Open connections of this process, by user."""
        return dict(self._per_user)

    def open_count(self, user: str) -> int:
        """How many connections `user` has open on this process."""
        return self._per_user.get(user, 0)

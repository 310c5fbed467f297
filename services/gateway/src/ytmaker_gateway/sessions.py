"""WebSocket sessions: every connection has a client id; a reconnect with `old_client_id`
within the window restores its subscriptions from the last offset delivered per task
(issue 5, "Sessions").

The registry is this process's memory (the gateway is stateless apart from caches); session
records also go to the read model for the operator's views, best effort, never blocking a
client. A client that lands on another replica still resumes exactly: it sends `since` itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ytmaker_gateway.adapters.progress_api import ProgressApi, ProgressUnavailable

log = logging.getLogger(__name__)


def new_client_id() -> str:
    return f"c-{uuid.uuid4().hex}"


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


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
    #: task_id → the last offset delivered (-1: none yet).
    offsets: dict[str, int] = field(default_factory=dict)
    projects: set[str] = field(default_factory=set)
    #: The live connection object (api.ws.Connection) while connected; never serialised.
    connection: Any = field(default=None, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        """The read model's session record (services/progress/API.md)."""
        return {
            "client_id": self.client_id,
            "user": self.user,
            "connected_at": _iso(self.connected_at),
            "disconnected_at": _iso(self.disconnected_at),
            "last_active_at": _iso(self.last_active_at),
            "message_count": self.message_count,
            "address": self.address[:200],
            "user_agent": self.user_agent[:500],
            "subscriptions": sorted(self.offsets),
        }


class SessionRegistry:
    def __init__(self, window_s: float, store: ProgressApi | None = None) -> None:
        self.window_s = window_s
        self.store = store
        self.active: dict[str, Session] = {}
        self._closed: dict[str, Session] = {}
        self._saving: set[asyncio.Task[None]] = set()

    def open(self, session: Session) -> None:
        self.active[session.client_id] = session
        self.save(session)

    def close(self, session: Session) -> None:
        session.disconnected_at = time.time()
        session.connection = None
        self.active.pop(session.client_id, None)
        self._closed[session.client_id] = session
        self._expire()
        self.save(session)

    def take(self, old_client_id: str, user: str) -> Session | None:
        """The closed session `old_client_id` of `user` if it ended within the window (it is
        then consumed: a session is restored once)."""
        self._expire()
        session = self._closed.get(old_client_id)
        if session is None or session.user != user:
            return None
        del self._closed[old_client_id]
        return session

    def _expire(self) -> None:
        horizon = time.time() - self.window_s
        for client_id in [
            cid for cid, s in self._closed.items() if (s.disconnected_at or 0) < horizon
        ]:
            del self._closed[client_id]

    def save(self, session: Session) -> None:
        """Send the session's record to the read model in the background."""
        if self.store is None:
            return
        task = asyncio.create_task(self._save(session.record()))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _save(self, record: dict[str, Any]) -> None:
        assert self.store is not None
        try:
            await self.store.save_session(record)
        except ProgressUnavailable as exc:
            log.debug("session record not stored", extra={"reason": str(exc)})

    def by_user(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for session in self.active.values():
            counts[session.user] = counts.get(session.user, 0) + 1
        return counts

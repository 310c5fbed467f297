"""One Socket.IO connection to `/progress`: who it is, its queue, its subscriptions, and the
position vector every event carries (sio/positions.py).

Everything the connection sends goes through one bounded `ClientQueue`, exactly like a WebSocket
client's, so the fan-out, the replay and the slow-client rule are the same code. The writer
turns each queued message into a Socket.IO event named by its `type`, with two arguments: the
message (`{type, task_id, offset, payload}`, as on the WebSocket) and the position string.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka.errors import KafkaError

from ytmaker_gateway import metrics
from ytmaker_gateway.auth import Principal
from ytmaker_gateway.fanout.client_queue import ClientQueue
from ytmaker_gateway.fanout.subscription import Subscription
from ytmaker_gateway.fanout.watching import Watching
from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.rules.errors import GatewayError, NotFound
from ytmaker_gateway.rules.position import StreamPosition
from ytmaker_gateway.rules.protocol import error_message, message
from ytmaker_gateway.rules.session import SessionLimits, SessionRules
from ytmaker_gateway.sio.positions import Positions

log = logging.getLogger(__name__)

#: emit(event, data) to this connection.
Emit = Callable[[str, Any], Awaitable[None]]


class SioClient:
    def __init__(self, sid: str, gateway: Gateway, principal: Principal, emit: Emit) -> None:
        self.sid = sid
        self.gateway = gateway
        self.settings = gateway.settings
        self.principal = principal
        self._emit = emit
        self.queue = ClientQueue(
            self._write, maxsize=self.settings.client_queue_size, batch=self.settings.write_batch
        )
        #: What the client has been sent; a recovering client starts from what it says it has.
        self.positions = Positions(gateway.hub.epoch)
        self.watching = Watching(gateway.hub)
        #: The rate limit, its violations and the subscription cap, as on the WebSocket (the
        #: heartbeat is Engine.IO's own).
        self.rules = SessionRules(
            SessionLimits.of(self.settings), now=time.time(), rate_now=time.monotonic()
        )
        #: The tasks of a recovered session and the offset each resumes after, subscribed
        #: again once the writer runs.
        self.restoring: list[tuple[str, int | None]] = []
        self._subscribing = asyncio.Lock()  # one (re)subscribe at a time
        self.closed = False  # gone: a join still under way attaches nothing
        self.hello: dict[str, Any] = {}
        self.writer: asyncio.Task[None] | None = None
        #: (message type, task_id) → set once such a message has been written.
        self._written: dict[tuple[str, str], asyncio.Event] = {}

    # --- writing -------------------------------------------------------------------------

    def start(self, on_overflow: Callable[[], Awaitable[None]]) -> None:
        """Start writing (call once the namespace's CONNECT packet is out): the `connected`
        event first, then the queue, while the tasks of a recovered session are subscribed
        again (their replays wait for the writer: they move at the pace the client reads).
        `on_overflow` closes the transport of a slow client, which reconnects and recovers by
        its positions; so does the token's expiry."""

        async def run() -> None:
            # One argument only: the client keeps the position string it had.
            hello = {"type": "connected", "task_id": None, "offset": None, "payload": self.hello}
            await self._emit("connected", hello)
            helpers = [
                asyncio.create_task(self._restore(), name=f"sio-restore-{self.sid}"),
                asyncio.create_task(self._expiry(on_overflow), name=f"sio-expiry-{self.sid}"),
            ]
            try:
                await self.queue.run()
            finally:
                for helper in helpers:
                    helper.cancel()
            if self.queue.overflowed:
                metrics.SLOW_CLIENT_CLOSES.inc()
                await on_overflow()

        self.writer = asyncio.create_task(run(), name=f"sio-writer-{self.sid}")
        self.writer.add_done_callback(self._writer_done)

    async def _restore(self) -> None:
        for task_id, since in self.restoring:
            try:
                position = StreamPosition(since, self.positions.epoch)
                await self.subscribe(task_id, position, restored=True)
            except GatewayError as exc:
                self.error(exc.code, exc.message, task_id, restored=True, **exc.details)
                self.positions.tasks.pop(task_id, None)
        self.restoring = []

    async def _expiry(self, close: Callable[[], Awaitable[None]]) -> None:
        """Close the transport when the token expires: a connection lives no longer than the
        credential it was opened with (it reconnects with a new token and recovers)."""
        expires_at = self.principal.expires_at
        if expires_at is None:
            return  # the development user: no expiry
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        metrics.BAD_INPUT.labels("token_expired").inc()
        expired = self.expect("error", "")
        self.error("unauthorized", "token expired: reconnect with a new one")
        await self.written(expired, timeout_s=1.0)
        await close()

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "socket.io writer failed",
                extra={"client_id": self.sid, "error": repr(task.exception())},
            )

    async def _write(self, text: str) -> None:
        msg = orjson.loads(text)
        self._track(msg)
        await self._emit(str(msg["type"]), (msg, self.positions.encode()))
        written = self._written.pop((str(msg["type"]), str(msg.get("task_id") or "")), None)
        if written is not None:
            written.set()

    def expect(self, kind: str, task_id: str) -> asyncio.Event:
        """An event set once the next `kind` message about the task has been written."""
        return self._written.setdefault((kind, task_id), asyncio.Event())

    def forget(self, kind: str, task_id: str, event: asyncio.Event) -> None:
        """Let go of an `expect`ed event nobody will wait for (a refused request): kept, one
        per refused task would pile up for as long as the connection lasts."""
        if self._written.get((kind, task_id)) is event:
            del self._written[(kind, task_id)]

    async def written(self, event: asyncio.Event, timeout_s: float = 5.0) -> None:
        """Wait for `event` (from `expect`), at most `timeout_s`: a request is acknowledged
        after what it changed in the client's positions, so that the position string the
        client holds when it has the acknowledgement already includes it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()

    def _track(self, msg: dict[str, Any]) -> None:
        """Move the position vector past one message about to be written."""
        kind, task_id, offset = msg["type"], msg.get("task_id"), msg.get("offset")
        payload = msg.get("payload") or {}
        if not isinstance(task_id, str):
            return
        if kind == "subscribed":
            if payload.get("epoch"):
                self.positions.epoch = str(payload["epoch"])
            if payload.get("recovered") or offset is None:
                self.positions.tasks[task_id] = -1 if offset is None else int(offset)
            else:
                self.positions.tasks[task_id] = None  # a snapshot follows
        elif kind == "unsubscribed":
            self.positions.tasks.pop(task_id, None)
        elif isinstance(offset, int) and task_id in self.positions.tasks:
            self.positions.advance(task_id, offset)

    # --- requests ------------------------------------------------------------------------

    def error(self, code: str, text: str, task_id: str | None = None, **details: Any) -> None:
        self.queue.push(error_message(code, text, task_id, **details))

    async def subscribe(
        self, task_id: str, position: StreamPosition, *, restored: bool = False
    ) -> bool:
        """Subscribe (or re-subscribe) to the task and return once its replay is queued (the
        writer must be running); False when the replay could not be read (a `replay_failed`
        error is queued). Raises GatewayError (forbidden, unavailable; not_found once the
        connection is closed: a join may wait for its task longer than the client stays, and
        what it registered then would stay in the hub for ever)."""
        ref, state = await self.gateway.access.task(self.principal, task_id, wait=True)
        async with self._subscribing:
            if self.closed:
                raise NotFound("the connection is closed")
            self.drop(task_id)

            def attach(sub: Subscription) -> None:
                sub.project_id = ref.project_id
                sub.restored = restored
                self.watching.attach(sub)

            try:
                await self.gateway.streams.subscribe(
                    task_id, self.queue, position, state=state, restored=restored, attach=attach
                )
            except (TimeoutError, KafkaError) as exc:
                self.drop(task_id)
                log.warning("replay failed", extra={"task_id": task_id, "error": repr(exc)})
                self.error("replay_failed", "could not read history", task_id, restored=restored)
                return False
            except BaseException:
                self.drop(task_id)
                raise
            finally:
                if self.closed:  # closed while the replay ran
                    self.drop(task_id)
            if self.closed:
                raise NotFound("the connection is closed")
        return True

    def drop(self, task_id: str) -> bool:
        """Stop the task's subscription, if any; True when there was one."""
        return self.watching.drop(task_id) is not None

    async def control(self, task_id: str, action: str, reason: str) -> dict[str, Any]:
        """Cancel / pause / resume; raises GatewayError."""
        result = await self.gateway.commands.control(
            self.principal,
            task_id,
            action,  # type: ignore[arg-type]
            reason,
        )
        self.queue.push(message("ack", result, task_id))
        return result

    async def close(self) -> None:
        """Unregister everything; stop the writer."""
        self.closed = True
        self.watching.close()
        self.queue.close()
        if self.writer is not None and self.writer is not asyncio.current_task():
            self.writer.cancel()
            with contextlib.suppress(BaseException):
                await self.writer


def gateway_error(exc: GatewayError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details}

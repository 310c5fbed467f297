"""The WebSocket endpoints of DESIGN §5: `/api/v1/ws` and `/api/v1/projects/{id}/progress`.

A `Connection` owns one socket and runs five tasks: the receiver (reads every frame at once),
the handler (answers them in order; a subscribe's replay runs here, paced by the client), the
writer (the outbox), the heartbeat and the token's expiry. The first of them to finish decides
how the socket closes: the writer on overflow (1013: a slow client resumes by offset), the
heartbeat on silence (4408), the expiry (4401), the receiver when the client leaves or keeps
breaking the rules (1008) or sends an oversize frame (1009). Bad messages otherwise get an
`error` message and the socket stays. A user past `max_connections_per_user` open sockets is
told so and closed with 4429 before anything else happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ytmaker_gateway import metrics
from ytmaker_gateway.auth import AuthError, Principal, authenticate, bearer
from ytmaker_gateway.context import Gateway
from ytmaker_gateway.errors import Conflict, GatewayError
from ytmaker_gateway.fanout.outbox import Outbox
from ytmaker_gateway.fanout.subscription import ProjectFeed, Subscription
from ytmaker_gateway.ids import is_client_id, is_uuid
from ytmaker_gateway.protocol import (
    CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY_CONNECTIONS,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORIZED,
    ClientMessage,
    ProtocolError,
    error_message,
    message,
    now_iso,
    parse_client_message,
)
from ytmaker_gateway.sessions import Session, new_client_id

log = logging.getLogger(__name__)
router = APIRouter()


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def _authenticate(ws: WebSocket, gateway: Gateway) -> Principal | None:
    """The principal of the `token` query parameter or the Authorization header; None (and
    the socket closed with 4401) when there is none or it is invalid. The socket is accepted
    first either way: a refused handshake would show clients a bare HTTP 403, not the code."""
    await ws.accept()
    token = ws.query_params.get("token") or bearer(ws.headers.get("authorization"))
    try:
        return authenticate(gateway.tokens, token)
    except AuthError as exc:
        metrics.BAD_INPUT.labels("unauthorized").inc()
        await ws.close(CLOSE_UNAUTHORIZED, str(exc)[:120])
        return None


async def _admit(ws: WebSocket, gateway: Gateway, principal: Principal) -> bool:
    """Whether the user may open one more connection here; if not, the socket is told why
    (`error too_many_connections`, with `retry_after`) and closed with 4429."""
    limit = gateway.settings.max_connections_per_user
    if gateway.sessions.open_count(principal.user) < limit:
        return True
    metrics.BAD_INPUT.labels("too_many_connections").inc()
    text = f"at most {limit} open connections per user: close one, then retry"
    with contextlib.suppress(Exception):
        await ws.send_text(error_message("too_many_connections", text, retry_after=RETRY_AFTER_S))
        await ws.close(CLOSE_TOO_MANY_CONNECTIONS, text[:120])
    return False


#: What a refused connection is told to wait before it tries again (seconds).
RETRY_AFTER_S = 5


@router.websocket("/api/v1/ws")
async def websocket(ws: WebSocket) -> None:
    gateway: Gateway = ws.app.state.gateway
    principal = await _authenticate(ws, gateway)
    if principal is None or not await _admit(ws, gateway, principal):
        return
    old_client_id = ws.query_params.get("old_client_id")
    await Connection(ws, gateway, principal).run(
        old_client_id if is_client_id(old_client_id) else None
    )


@router.websocket("/api/v1/projects/{project_id}/progress")
async def project_progress(ws: WebSocket, project_id: str) -> None:
    gateway: Gateway = ws.app.state.gateway
    principal = await _authenticate(ws, gateway)
    if principal is None or not await _admit(ws, gateway, principal):
        return
    if not is_uuid(project_id):
        metrics.BAD_INPUT.labels("invalid_field").inc()
        text = "the project id is not an id as the system issues them (a lowercase UUID)"
        await ws.send_text(error_message("invalid_field", text))
        await ws.close(CLOSE_POLICY, "invalid project id")
        return
    await Connection(ws, gateway, principal, project_id=project_id).run(None)


class Connection:
    def __init__(
        self, ws: WebSocket, gateway: Gateway, principal: Principal, project_id: str | None = None
    ) -> None:
        self.ws = ws
        self.gateway = gateway
        self.settings = gateway.settings
        self.principal = principal
        self.project_id = project_id
        self.outbox = Outbox(
            ws.send_text, maxsize=self.settings.client_queue_size, batch=self.settings.write_batch
        )
        client = ws.client
        self.session = Session(
            client_id=new_client_id(),
            user=principal.user,
            address=f"{client.host}:{client.port}" if client else "",
            user_agent=ws.headers.get("user-agent", ""),
        )
        self.session.connection = self
        self.session.current_offsets = self.offsets
        self.subs: dict[str, Subscription] = {}
        self.feed: ProjectFeed | None = None
        self._subscribing = asyncio.Lock()  # one (re)subscribe at a time, WebSocket or REST
        self._replaying = 0  # subscribes whose replay is running
        #: Frames received, waiting for the handler (a replay may keep it a while).
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue(
            maxsize=max(16, 2 * int(self.settings.max_messages_per_second))
        )
        self._violations = 0
        self._tokens = self.settings.max_messages_per_second
        self._refilled = time.monotonic()

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self, old_client_id: str | None) -> None:
        metrics.CONNECTED_CLIENTS.inc()
        self.gateway.sessions.open(self.session)
        writer = asyncio.create_task(self.outbox.run(), name="ws-writer")
        receiver = asyncio.create_task(self._receive_loop(), name="ws-receiver")
        handler = asyncio.create_task(self._handle_loop(old_client_id), name="ws-handler")
        heartbeat = asyncio.create_task(self._heartbeat(), name="ws-heartbeat")
        expiry = asyncio.create_task(self._expiry(), name="ws-expiry")
        tasks = {writer, receiver, handler, heartbeat, expiry}
        close: tuple[int, str] | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            close = self._close_reason(done, writer)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            self._teardown()
            if close is not None and self.ws.client_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    if close[0] != CLOSE_TRY_AGAIN_LATER:
                        await self.outbox.flush(timeout_s=1.0)  # e.g. the error that explains
                    await self.ws.close(*close)

    def _close_reason(
        self, done: set[asyncio.Task[Any]], writer: asyncio.Task[None]
    ) -> tuple[int, str] | None:
        if self.outbox.overflowed:
            metrics.SLOW_CLIENT_CLOSES.inc()
            return CLOSE_TRY_AGAIN_LATER, "too slow: resume with your last offset"
        for task in done:
            exc = task.exception()
            if isinstance(exc, _Close):
                return exc.code, exc.reason
            if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                log.warning("connection failed", extra={"error": repr(exc)})
                return 1011, "internal error"
        return None

    def _teardown(self) -> None:
        for sub in self.subs.values():
            self._drop(sub)
        if self.feed is not None:
            self.gateway.hub.unregister_project(self.feed)
            metrics.PROJECT_WATCHERS.dec()
        self.session.offsets = self.offsets()
        self.gateway.sessions.close(self.session)
        metrics.CONNECTED_CLIENTS.dec()

    def _drop(self, sub: Subscription) -> None:
        sub.cancel()
        self.gateway.hub.unregister(sub)
        metrics.PROJECT_WATCHERS.dec()

    def projects(self) -> list[str]:
        """The project of every open subscription and stream (for the operator's views)."""
        found = [sub.project_id for sub in self.subs.values() if sub.project_id]
        return found + ([self.feed.project_id] if self.feed is not None else [])

    def offsets(self) -> dict[str, int]:
        """task_id → the last offset written to the socket, for every subscription."""
        return {task_id: self.outbox.delivered.get(task_id, -1) for task_id in self.subs}

    async def _expiry(self) -> None:
        """Close with 4401 when the token expires (its `exp` plus the leeway): a socket lives
        no longer than the credential it was opened with. Reconnect with a new token and
        `old_client_id` to resume."""
        expires_at = self.principal.expires_at
        if expires_at is None:
            await asyncio.Event().wait()  # the development user: no expiry
            return
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        metrics.BAD_INPUT.labels("token_expired").inc()
        self.outbox.push(error_message("unauthorized", "token expired: reconnect with a new one"))
        raise _Close(CLOSE_UNAUTHORIZED, "token expired")

    async def _heartbeat(self) -> None:
        """Ping every interval; close (4408) a client silent for two. While a replay runs,
        a client that keeps reading it is alive too: its pong may wait behind megabytes of
        replay in the buffers (a dead one stalls the replay once the kernel's buffers fill)."""
        interval = self.settings.heartbeat_interval_s
        sent = self.outbox.sent
        while True:
            await asyncio.sleep(interval)
            reading, sent = self._replaying > 0 and self.outbox.sent > sent + 1, self.outbox.sent
            if reading:
                self.session.last_active_at = max(
                    self.session.last_active_at, time.time() - interval
                )
            if time.time() - self.session.last_active_at > 2 * interval:
                raise _Close(CLOSE_HEARTBEAT_TIMEOUT, "no message for two heartbeat intervals")
            self.outbox.push(message("ping", {"timestamp": time.time()}))

    # --- reading -------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        """Read every frame as it comes, whatever the handler is doing (a replay can take a
        while): a client's close, its pings and a flood are seen at once. Frames go to the
        handler, in order, through a small queue."""
        while True:
            incoming = await self.ws.receive()
            if incoming["type"] == "websocket.disconnect":
                if incoming.get("code") == CLOSE_TOO_BIG:
                    metrics.BAD_INPUT.labels("oversize").inc()
                return
            frame: str | bytes | None = incoming.get("text")
            if frame is None:
                frame = incoming.get("bytes") or b""
            self.session.last_active_at = time.time()
            self.session.message_count += 1
            if len(frame) > self.settings.max_frame_bytes:
                metrics.BAD_INPUT.labels("oversize").inc()
                raise _Close(CLOSE_TOO_BIG, "frame too large")
            if not self._within_rate():
                self._violation("rate_limited", "too many messages per second")
                continue
            try:
                self._inbox.put_nowait(frame)
            except asyncio.QueueFull:
                metrics.BAD_INPUT.labels("rate_limited").inc()
                raise _Close(CLOSE_POLICY, "too many messages waiting") from None

    async def _handle_loop(self, old_client_id: str | None) -> None:
        """Greet, then answer the client's messages one after the other, in order."""
        await self._greet(old_client_id)
        while True:
            frame = await self._inbox.get()
            request: ClientMessage | None = None
            try:
                request = parse_client_message(frame)
                await self._handle(request)
            except ProtocolError as exc:
                metrics.BAD_INPUT.labels(exc.code).inc()
                self.outbox.push(error_message(exc.code, exc.message, exc.task_id))
            except GatewayError as exc:
                # Name the task the failed request was about, so a client with several
                # requests in flight knows which one to repeat.
                task_id = getattr(request, "task_id", None)
                self.outbox.push(error_message(exc.code, exc.message, task_id, **exc.details))

    def _within_rate(self) -> bool:
        """A token bucket of `max_messages_per_second`, holding one second's worth."""
        now = time.monotonic()
        rate = self.settings.max_messages_per_second
        self._tokens = min(rate, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        self._violations = 0
        return True

    def _violation(self, code: str, text: str, task_id: str | None = None) -> None:
        """Answer a broken limit with an error; close (1008) when it goes on."""
        metrics.BAD_INPUT.labels(code).inc()
        self._violations += 1
        if self._violations > self.settings.max_violations:
            raise _Close(CLOSE_POLICY, f"{code}: closing")
        self.outbox.push(error_message(code, text, task_id))

    async def _greet(self, old_client_id: str | None) -> None:
        base = {
            "client_id": self.session.client_id,
            "heartbeat_interval": self.settings.heartbeat_interval_s,
            "server_time": now_iso(),
        }
        if self.project_id is not None:
            self.outbox.push(message("connected", base))
            await self._watch_project(self.project_id)
            return
        if not old_client_id:
            self.outbox.push(message("connected", base))
            return
        old = await self.gateway.sessions.restore(old_client_id, self.principal.user)
        metrics.RECONNECTS.labels(str(old is not None).lower()).inc()
        self.gateway.reconnects += 1
        if old is None:
            self.outbox.push(message("connected", base | {"restored": False}))
            return
        self.gateway.reconnects_restored += 1
        self.outbox.push(
            message(
                "reconnected",
                base | {"old_client_id": old_client_id, "subscribed": sorted(old.offsets)},
            )
        )
        for task_id, offset in old.offsets.items():
            if not is_uuid(task_id):
                continue  # not a task id: a record of the read model nobody should trust
            try:
                await self._subscribe(task_id, offset if offset >= 0 else None, None, restored=True)
            except GatewayError as exc:
                # Marked like `subscribed.restored`: the client's own subscribe decides.
                self.outbox.push(error_message(exc.code, exc.message, task_id, restored=True))

    async def _handle(self, msg: ClientMessage) -> None:
        if msg.action == "ping":
            self.outbox.push(message("pong", {"timestamp": time.time()}))
        elif msg.action == "pong":
            pass
        elif self.project_id is not None:
            raise ProtocolError("unknown_action", "a project stream only takes ping", msg.task_id)
        elif msg.action == "subscribe":
            assert msg.task_id is not None
            if msg.task_id not in self.subs and len(self.subs) >= self.settings.max_subscriptions:
                self._violation("too_many_subscriptions", "subscription limit reached", msg.task_id)
                return
            await self._subscribe(msg.task_id, msg.since, msg.epoch)
        elif msg.action == "unsubscribe":
            assert msg.task_id is not None
            self.unsubscribe(msg.task_id)
        else:
            assert msg.task_id is not None
            result = await self.gateway.commands.control(
                self.principal,
                msg.task_id,
                msg.action,
                msg.reason,
            )
            self.outbox.push(message("ack", result, msg.task_id))

    def unsubscribe(self, task_id: str) -> None:
        sub = self.subs.pop(task_id, None)
        if sub is not None:
            self._drop(sub)
        self.outbox.push(message("unsubscribed", {"task_id": task_id}, task_id))

    async def subscribe_from_rest(self, task_id: str, since: int | None) -> None:
        """`POST /progress/{task_id}/subscribe?client_id=`: as if the client had asked."""
        if task_id not in self.subs and len(self.subs) >= self.settings.max_subscriptions:
            raise Conflict("the client's subscription limit is reached")
        await self._subscribe(task_id, since, None)

    async def _subscribe(
        self, task_id: str, since: int | None, epoch: str | None, *, restored: bool = False
    ) -> None:
        """(Re)subscribe; raises GatewayError (forbidden, unavailable).

        One at a time per connection. On one connection every update of a task is sent
        once: a subscribe that replaces a subscription of the same task (over the socket or
        REST) continues after the last update that one sent. The exception is a subscription
        the server restored for `old_client_id`: the client's own subscribe replaces it with
        the client's `since` (the client ignores the restored stream until that answer)."""
        ref, state = await self.gateway.access.task(self.principal, task_id, wait=True)
        async with self._subscribing:
            old = self.subs.pop(task_id, None)
            if old is not None:
                self._drop(old)
                sent = -1 if old.restored else old.last_offset
                if sent >= 0 and (since is None or since < sent):
                    since, epoch = sent, None
            attached: list[Subscription] = []

            def attach(sub: Subscription) -> None:
                sub.project_id = ref.project_id
                sub.restored = restored
                self.subs[task_id] = sub
                attached.append(sub)
                metrics.PROJECT_WATCHERS.inc()

            self._replaying += 1
            try:
                await self.gateway.streams.subscribe(
                    task_id,
                    self.outbox,
                    since=since,
                    epoch=epoch,
                    state=state,
                    restored=restored,
                    attach=attach,
                )
            except BaseException as exc:
                for sub in attached:
                    if self.subs.get(task_id) is sub:
                        del self.subs[task_id]
                        metrics.PROJECT_WATCHERS.dec()
                if not isinstance(exc, TimeoutError | KafkaError):
                    raise
                log.warning("replay failed", extra={"task_id": task_id, "error": repr(exc)})
                self.outbox.push(error_message("replay_failed", "could not read history", task_id))
            finally:
                self._replaying -= 1

    async def _watch_project(self, project_id: str) -> None:
        try:
            found = await self.gateway.access.project(self.principal, project_id)
        except GatewayError as exc:
            self.outbox.push(error_message(exc.code, exc.message))
            raise _Close(4403 if exc.status == 403 else 1011, exc.code) from None
        tasks = found.get("tasks") or []
        self.feed = await self.gateway.streams.watch_project(
            project_id, self.outbox, tasks[0] if tasks else None
        )
        metrics.PROJECT_WATCHERS.inc()

"""One WebSocket client connection: the glue between its socket and the gateway.

A `Connection` runs four tasks: the receiver (reads every frame at once), the handler (answers
them in order; a subscribe's replay runs here, paced by the client), the writer (the client's
queue) and the clock (the heartbeat and the token's expiry). The first of them to finish
decides how the socket closes: the writer on overflow (1013: a slow client resumes by offset),
the clock on silence (4408) or when the token expires (4401), the receiver when the client
leaves or keeps breaking the rules (1008) or sends an oversize frame (1009); a reconnect of
its client with its id closes it at once (1000, `replace`). Bad messages
otherwise get an `error` message and the socket stays. What is allowed is decided by the
connection's `SessionRules` (rules/session.py); this module only carries it out
(docs/protocol.md).

What the session record keeps per task, for a reconnect with `old_client_id`, is what the
client *said* it has, never merely what was written to its socket (a client that stopped
reading would otherwise be restored past what it never read): the `since` it resumed after,
then, at each heartbeat, what was queued before the ping its pong answers (rules/pings.py;
docs/decisions/0115-sessions-resume-from-what-the-client-acknowledged.md, 0118, 0119).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ytmaker_gateway import metrics
from ytmaker_gateway.api.wsprotocol import EXTENSION
from ytmaker_gateway.auth import Principal
from ytmaker_gateway.core.sessions import Session, new_client_id
from ytmaker_gateway.fanout.client_queue import ClientQueue
from ytmaker_gateway.fanout.subscription import Subscription
from ytmaker_gateway.fanout.watching import Watching
from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.rules.errors import Conflict, GatewayError, NotFound
from ytmaker_gateway.rules.ids import is_uuid
from ytmaker_gateway.rules.pings import PingLedger
from ytmaker_gateway.rules.position import StreamPosition
from ytmaker_gateway.rules.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORIZED,
    ClientMessage,
    ProtocolError,
    error_message,
    message,
    now_iso,
    parse_client_message,
)
from ytmaker_gateway.rules.session import Close, Refuse, SessionLimits, SessionRules, Verdict

log = logging.getLogger(__name__)


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def _send_held(ws: WebSocket, text: str) -> None:
    """Framed now, written to the socket with the next message (api/wsprotocol.py). Not a
    method: the queue would hold the connection that holds it, a reference cycle."""
    await ws.send({"type": "websocket.send", "text": text, "more": True})


class Connection:
    """Build it after the socket is accepted and its principal admitted, then `run()`."""

    def __init__(
        self, ws: WebSocket, gateway: Gateway, principal: Principal, project_id: str | None = None
    ) -> None:
        self.ws = ws
        self.gateway = gateway
        self.settings = gateway.settings
        self.principal = principal
        self.project_id = project_id
        #: What the server offers beyond ASGI, if it is the gateway's (api/wsprotocol.py).
        self._server: dict[str, Any] = ws.scope.get("extensions", {}).get(EXTENSION, {})
        self.queue = ClientQueue(
            ws.send_text,
            maxsize=self.settings.client_queue_size,
            batch=self.settings.write_batch,
            send_held=functools.partial(_send_held, ws),
            write_now=self._server.get("write_now"),
        )
        client = ws.client
        self.session = Session(
            client_id=new_client_id(),
            user=principal.user,
            address=f"{client.host}:{client.port}" if client else "",
            user_agent=ws.headers.get("user-agent", ""),
        )
        self.session.connection = self
        self.rules = SessionRules(
            SessionLimits.of(self.settings),
            now=self.session.last_active_at,
            rate_now=time.monotonic(),
            project_stream=project_id is not None,
        )
        self.watching = Watching(gateway.hub)
        self._subscribing = asyncio.Lock()  # one (re)subscribe at a time, WebSocket or REST
        self._replaying = 0  # subscribes whose replay is running
        self._closed = False  # torn down: a REST subscribe still under way attaches nothing
        self._clock_task: asyncio.Task[None] | None = None
        #: Made by `replace()` (a reconnect with this connection's id), done once torn down.
        self._replaced: asyncio.Future[None] | None = None
        #: Messages received (or why one was refused), waiting for the handler in order (a
        #: replay may keep it a while). Pongs are taken at once by the receiver.
        self._inbox: asyncio.Queue[ClientMessage | ProtocolError] = asyncio.Queue(
            maxsize=max(16, 2 * int(self.settings.max_messages_per_second))
        )
        #: Pings queued and not answered; each one's pong vouches, for every subscription
        #: with something queued, for the last offset queued before it.
        self._pings: PingLedger[list[tuple[Subscription, int]]] = PingLedger()

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self, old_client_id: str | None) -> None:
        metrics.CONNECTED_CLIENTS.inc()
        self.gateway.sessions.open(self.session)
        writer = asyncio.create_task(self.queue.run(), name="ws-writer")
        receiver = asyncio.create_task(self._receive_loop(), name="ws-receiver")
        handler = asyncio.create_task(self._handle_loop(old_client_id), name="ws-handler")
        clock = self._clock_task = asyncio.create_task(self._clock(), name="ws-clock")
        tasks = {writer, receiver, handler, clock}
        close: tuple[int, str] | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            close = self._close_reason(done)
        finally:
            for task in tasks:
                task.cancel()
            try:
                # Not `await task`: its exception, raised here, would hold this frame, which
                # holds the tasks, which hold the exception, a cycle of the whole connection.
                await asyncio.wait(tasks)
            finally:  # even if this one is cancelled meanwhile (the server stopping)
                self._teardown()
            if close is not None and self.ws.client_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    if close[0] != CLOSE_TRY_AGAIN_LATER:
                        await self.queue.flush(timeout_s=1.0)  # e.g. the error that explains
                    await self.ws.close(*close)

    async def replace(self) -> None:
        """Close this connection because its client reconnected with its id (it saw the link
        die before the heartbeat here did); return once it is torn down, its session closed
        with what the client acknowledged, ready to be restored."""
        if self._closed or self._clock_task is None:
            return
        if self._replaced is None:
            self._replaced = asyncio.get_running_loop().create_future()
            self._clock_task.cancel()  # ends `run`'s wait: the clock is one of its tasks
        await asyncio.shield(self._replaced)

    def _close_reason(self, done: set[asyncio.Task[Any]]) -> tuple[int, str] | None:
        if self._replaced is not None:
            return CLOSE_NORMAL, "replaced by a reconnect with its client id"
        if self.queue.overflowed:
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
        self._closed = True
        self._clock_task = None  # it holds this connection: no cycle left behind (0106)
        self.session.offsets = self.offsets()  # before the subscriptions go
        self.watching.close()
        self.gateway.sessions.close(self.session)
        metrics.CONNECTED_CLIENTS.dec()
        if self._replaced is not None and not self._replaced.done():
            self._replaced.set_result(None)

    @property
    def takes_tasks(self) -> bool:
        """Whether the client takes task subscriptions: a task stream (`/api/v1/ws`) does, a
        project stream (pings only) does not, not even from REST."""
        return self.rules.accepts("subscribe")

    def projects(self) -> list[str]:
        """The project of every open subscription and stream (for the operator's views)."""
        return self.watching.projects()

    def offsets(self) -> dict[str, int | None]:
        """task_id → the last offset the client acknowledged (-1: the whole run, None:
        nothing yet), for every subscription: what a reconnect with `old_client_id` resumes
        after."""
        return {sub.task_id: sub.acknowledged for sub in self.watching.subscriptions()}

    async def _clock(self) -> None:
        """The connection's two deadlines, in one task (each task is a few more objects per
        connection for the collector to walk, decision 0106): ping every heartbeat interval
        and close (4408) a client the rules find silent; close (4401) when the token expires
        (its `exp` plus the leeway), as a socket lives no longer than the credential it was
        opened with. Reconnect with a new token and `old_client_id` to resume."""
        interval = self.settings.heartbeat_interval_s
        expires_at = self.principal.expires_at  # None: the development user, no expiry
        beat_at = time.monotonic() + interval
        while True:
            wait = beat_at - time.monotonic()
            if expires_at is not None:
                wait = min(wait, expires_at - time.time())
            await asyncio.sleep(max(0.0, wait))
            if expires_at is not None and time.time() >= expires_at:
                metrics.BAD_INPUT.labels("token_expired").inc()
                self.queue.push(
                    error_message("unauthorized", "token expired: reconnect with a new one")
                )
                raise _Close(CLOSE_UNAUTHORIZED, "token expired")
            if time.monotonic() >= beat_at:
                beat_at = time.monotonic() + interval
                self._beat()

    def _beat(self) -> None:
        """One heartbeat: close (4408) a client the rules find silent, else ping it."""
        backlog = self._server.get("backlog")
        silent = self.rules.beat(
            time.time(),
            sent=self.queue.sent,
            replaying=self._replaying > 0,
            backlog=None if backlog is None else backlog(),
        )
        self.session.last_active_at = self.rules.last_heard
        if silent:
            raise _Close(CLOSE_HEARTBEAT_TIMEOUT, "no message for two heartbeat intervals")
        sent_at = time.time()
        if self.queue.push(message("ping", {"timestamp": sent_at})):
            # What its pong will vouch for: a subscription with nothing queued yet has none.
            subscriptions = self.watching.subscriptions()
            queued = [(sub, sub.last_offset) for sub in subscriptions if sub.last_offset >= 0]
            self._pings.sent(sent_at, queued)

    def _pong(self, timestamp: float | None) -> None:
        """The client answered a ping (the one whose `timestamp` it echoes): it has read
        everything queued before it (rules/pings.py)."""
        for sub, offset in self._pings.answer(timestamp) or ():
            sub.acknowledge(offset)

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
            verdict = self.rules.received(len(frame), now=time.time(), rate_now=time.monotonic())
            self.session.last_active_at = self.rules.last_heard
            self.session.message_count += 1
            if verdict is not None:
                self._carry_out(verdict)
                continue
            request: ClientMessage | ProtocolError
            try:
                request = parse_client_message(frame)
            except ProtocolError as exc:
                # A copy never raised: the exception's traceback holds this frame, which
                # would hold it in `request`, a cycle of the whole connection (decision 0106).
                request = ProtocolError(exc.code, exc.message, exc.task_id)
            else:
                if request.action == "pong":
                    self._pong(request.timestamp)
                    continue
            try:
                self._inbox.put_nowait(request)
            except asyncio.QueueFull:
                metrics.BAD_INPUT.labels("rate_limited").inc()
                raise _Close(CLOSE_POLICY, "too many messages waiting") from None

    def _carry_out(self, verdict: Verdict, task_id: str | None = None) -> None:
        """Count a refusal and answer it with an error, or close (raises _Close)."""
        if isinstance(verdict, Close):
            metrics.BAD_INPUT.labels(verdict.kind).inc()
            raise _Close(verdict.code, verdict.reason)
        if isinstance(verdict, Refuse):
            metrics.BAD_INPUT.labels(verdict.code).inc()
            self.queue.push(error_message(verdict.code, verdict.text, task_id))

    async def _handle_loop(self, old_client_id: str | None) -> None:
        """Greet, then answer the client's messages one after the other, in order."""
        await self._greet(old_client_id)
        while True:
            request = await self._inbox.get()
            if isinstance(request, ProtocolError):
                self._refuse(request)
                continue
            try:
                await self._handle(request)
            except ProtocolError as exc:
                self._refuse(exc)
            except GatewayError as exc:
                # Name the task the failed request was about, so a client with several
                # requests in flight knows which one to repeat.
                self.queue.push(
                    error_message(exc.code, exc.message, request.task_id, **exc.details)
                )

    def _refuse(self, exc: ProtocolError) -> None:
        metrics.BAD_INPUT.labels(exc.code).inc()
        self.queue.push(error_message(exc.code, exc.message, exc.task_id))

    async def _greet(self, old_client_id: str | None) -> None:
        base = {
            "client_id": self.session.client_id,
            "heartbeat_interval": self.settings.heartbeat_interval_s,
            "server_time": now_iso(),
            "limits": self.rules.limits.announced(),
        }
        if self.project_id is not None:
            self.queue.push(message("connected", base))
            await self._watch_project(self.project_id)
            return
        if not old_client_id:
            self.queue.push(message("connected", base))
            return
        old = await self.gateway.sessions.restore(old_client_id, self.principal.user)
        metrics.RECONNECTS.labels(str(old is not None).lower()).inc()
        self.gateway.reconnects += 1
        if old is None:
            self.queue.push(message("connected", base | {"restored": False}))
            return
        self.gateway.reconnects_restored += 1
        self.queue.push(
            message(
                "reconnected",
                base | {"old_client_id": old_client_id, "subscribed": sorted(old.offsets)},
            )
        )
        for task_id, offset in old.offsets.items():
            if not is_uuid(task_id):
                continue  # not a task id: a record of the read model nobody should trust
            position = StreamPosition(offset)  # None: nothing acknowledged, a snapshot
            try:
                await self._subscribe(task_id, position, restored=True)
            except GatewayError as exc:
                # Marked like `subscribed.restored`: the client's own subscribe decides.
                self.queue.push(error_message(exc.code, exc.message, task_id, restored=True))

    async def _handle(self, msg: ClientMessage) -> None:
        if msg.action == "ping":
            self.queue.push(message("pong", {"timestamp": time.time()}))
        elif msg.action == "pong":
            pass  # never queued: the receiver takes pongs at once (`_pong`)
        elif not self.rules.accepts(msg.action):
            raise ProtocolError("unknown_action", "a project stream only takes ping", msg.task_id)
        elif msg.action == "subscribe":
            assert msg.task_id is not None
            if not self.rules.may_subscribe(msg.task_id, self.watching):
                verdict = self.rules.violation(
                    "too_many_subscriptions", "subscription limit reached"
                )
                self._carry_out(verdict, msg.task_id)
                return
            await self._subscribe(msg.task_id, msg.position, limited=True)
        elif msg.action == "unsubscribe":
            assert msg.task_id is not None
            self.unsubscribe(msg.task_id)
        else:
            assert msg.task_id is not None
            result = await self.gateway.commands.control(
                self.principal, msg.task_id, msg.action, msg.reason
            )
            self.queue.push(message("ack", result, msg.task_id))

    # --- subscriptions (the WebSocket's and REST's) --------------------------------------

    def unsubscribe(self, task_id: str) -> None:
        self.watching.drop(task_id)
        self.queue.push(message("unsubscribed", {"task_id": task_id}, task_id))

    async def subscribe_from_rest(self, task_id: str, since: int | None) -> None:
        """`POST /progress/{task_id}/subscribe?client_id=`: as if the client had asked (the
        route finds only task streams: `takes_tasks`)."""
        if not self.rules.may_subscribe(task_id, self.watching):
            raise Conflict("the client's subscription limit is reached")
        await self._subscribe(task_id, StreamPosition(since), limited=True)

    async def _subscribe(
        self,
        task_id: str,
        position: StreamPosition,
        *,
        restored: bool = False,
        limited: bool = False,
    ) -> None:
        """(Re)subscribe; raises GatewayError (forbidden, unavailable; with `limited`,
        conflict past the subscription limit; not_found once the connection is closed).

        REST subscribes run beside the socket's own: the limit is checked again under the
        lock (several at once all passed a check made before it), and a connection closed
        meanwhile keeps nothing registered (its subscription would stay in the hub for ever).

        One at a time per connection. On one connection every update of a task is sent
        once: a subscribe that replaces a subscription of the same task (over the socket or
        REST) continues after the last update that one sent. The exception is a subscription
        the server restored for `old_client_id`: the client's own subscribe replaces it with
        the client's `since` (the client ignores the restored stream until that answer)."""
        ref, state = await self.gateway.access.task(self.principal, task_id, wait=True)
        async with self._subscribing:
            if self._closed:
                raise NotFound("no such client connected to this gateway instance")
            if limited and not self.rules.may_subscribe(task_id, self.watching):
                raise Conflict("the client's subscription limit is reached")
            old = self.watching.drop(task_id)
            acknowledged = None
            if old is not None:
                acknowledged = old.acknowledged
                sent = -1 if old.restored else old.last_offset
                if sent >= 0 and (position.offset is None or position.offset < sent):
                    position = StreamPosition(sent)
            attached: list[Subscription] = []

            def attach(sub: Subscription) -> None:
                sub.project_id = ref.project_id
                sub.restored = restored
                sub.acknowledge(acknowledged)
                self.watching.attach(sub)
                attached.append(sub)

            self._replaying += 1
            try:
                await self.gateway.streams.subscribe(
                    task_id, self.queue, position, state=state, restored=restored, attach=attach
                )
            except BaseException as exc:
                for sub in attached:
                    self.watching.discard(sub)
                if not isinstance(exc, TimeoutError | KafkaError):
                    raise
                log.warning("replay failed", extra={"task_id": task_id, "error": repr(exc)})
                marked = {"restored": True} if restored else {}  # the client's subscribe decides
                self.queue.push(
                    error_message("replay_failed", "could not read history", task_id, **marked)
                )
            finally:
                self._replaying -= 1
                if self._closed:  # torn down while the replay ran (a REST subscribe)
                    for sub in attached:
                        self.watching.discard(sub)
            if self._closed:
                raise NotFound("no such client connected to this gateway instance")

    async def _watch_project(self, project_id: str) -> None:
        try:
            found = await self.gateway.access.project(self.principal, project_id)
        except GatewayError as exc:
            self.queue.push(error_message(exc.code, exc.message))
            raise _Close(CLOSE_FORBIDDEN if exc.status == 403 else 1011, exc.code) from None
        tasks = found.get("tasks") or []
        feed = await self.gateway.streams.watch_project(
            project_id, self.queue, tasks[0] if tasks else None
        )
        self.watching.watch_project(feed)

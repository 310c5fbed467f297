"""One WebSocket to the gateway that stays up: it reconnects with backoff, keeps a heartbeat,
and after every (re)connect resumes each of its task streams from its cursor (docs/protocol.md):
the gateway restores the old connection's streams for `old_client_id`, and those that do not
resume a cursor exactly are subscribed again (decision 0141). The decisions are the pure objects
of `protocol`; this module carries them out.

A `TaskStream` is one task's subscription on a channel: its `Cursor` and where its items go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ytmaker_client import protocol
from ytmaker_client.errors import (
    AuthenticationError,
    ConnectionLost,
    SubscriptionError,
    YtmakerError,
)
from ytmaker_client.models import Item
from ytmaker_client.options import ClientOptions, ConnectionState, StateChange
from ytmaker_client.protocol import Cursor, ServerMessage

log = logging.getLogger(__name__)


class StreamOwner(Protocol):
    """A subscription that task streams deliver to."""

    def deliver(self, item: Item) -> None: ...
    def stream_ended(self, stream: TaskStream, error: BaseException | None) -> None: ...


class TaskStream:
    """One task's subscription on a channel. `waits_for_room`: refused because the connection
    holds as many subscriptions as the gateway allows, it waits until one of them ends and is
    asked again (a project's run), instead of ending with that error (a task of the caller's)."""

    def __init__(
        self, task_id: str, cursor: Cursor, owner: StreamOwner, *, waits_for_room: bool = False
    ) -> None:
        self.task_id = task_id
        self.cursor = cursor
        self.owner = owner
        self.waits_for_room = waits_for_room
        self.refused_since: float | None = None
        self.retry: asyncio.TimerHandle | None = None
        # Until the `subscribed` answering our subscribe, what comes for the task is an older
        # subscription's (updates in flight when it was unsubscribed): not this stream's.
        self.awaiting_answer = True
        # The gateway restores it for `old_client_id`: its `subscribed` (`restored`) decides
        # whether it is kept or subscribed again.
        self.restoring = False

    def cancel_retry(self) -> None:
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None


class _Ended(Exception):
    """Why a connection ended (for the reconnect decision and the state listeners)."""

    def __init__(self, reason: str, *, final: YtmakerError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final


class _WithoutToken(logging.LoggerAdapter[logging.Logger]):
    """websockets' own logger with the token taken out of what it logs: at DEBUG it logs
    every handshake header, `Authorization: Bearer <token>` among them."""

    def __init__(self, token: str | None) -> None:
        super().__init__(logging.getLogger("websockets.client"))
        self.token = token

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.token and self.isEnabledFor(level):
            token = self.token
            msg = str(msg).replace(token, "[token]")
            args = tuple(a.replace(token, "[token]") if isinstance(a, str) else a for a in args)
        super().log(level, msg, *args, **kwargs)


class Channel:
    """A reconnecting WebSocket at `url` (with the token in the Authorization header, so that
    it never appears in a URL or a log line).

    `on_message` sees every message the channel does not handle itself (a project stream's
    `initial` and updates); `on_connected` runs after every (re)connect; `on_refused` gets a
    close with 4403 (a project stream that refuses the caller). `restores_sessions`: reconnect
    with `old_client_id` (a task stream; the gateway restores no project stream). Call
    `start()` once, then `close()`."""

    def __init__(
        self,
        url: str,
        token: str | None,
        options: ClientOptions,
        *,
        name: str,
        on_state: Callable[[StateChange], None],
        on_message: Callable[[ServerMessage], None] | None = None,
        on_connected: Callable[[], Coroutine[Any, Any, None]] | None = None,
        on_refused: Callable[[str], bool] | None = None,
        restores_sessions: bool = True,
    ) -> None:
        self.url = url
        self.token = token
        self.options = options
        self.name = name
        self.streams: dict[str, TaskStream] = {}
        self.state = ConnectionState.DISCONNECTED
        self._on_state = on_state
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_refused = on_refused
        self._ws: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        self._closing = asyncio.Event()
        self._first: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        # The loop keeps only weak references to tasks: the ones started and not awaited here
        # are held until they end, or one could be collected before it has run.
        self._background: set[asyncio.Task[None]] = set()
        self._backoff = options.backoff()
        self.connections = 0  # how many times a connection was made (for tests and stats)
        self.restores_sessions = restores_sessions
        self.client_id: str | None = None  # the last greeting's: `old_client_id` of the next
        self.sessions_restored = 0  # reconnects the gateway answered `reconnected`
        self.streams_restored = 0  # streams it restored that were kept, not asked for again
        self._restore_pending = False  # a sentinel ping's pong ends the restore
        self._up_since: float | None = None  # when the last connection was greeted
        #: The pace of subscription frames its greeting allows.
        self._frames_per_second = protocol.SUBSCRIPTION_FRAMES_PER_SECOND
        self._delivered = False  # whether it delivered anything
        # Subscribes and unsubscribes wait here for `_pace` to send them (decision 0135).
        self._to_subscribe: deque[TaskStream] = deque()
        self._to_unsubscribe: deque[str] = deque()
        self._asked: set[str] = set()  # subscribes sent and not answered yet
        self._waiting: deque[TaskStream] = deque()  # refused for room: asked when one frees
        self._outbox = asyncio.Event()

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Connect. With `wait`, return once connected; the first connection's failure is
        raised (AuthenticationError, ConnectionLost) instead of retried."""
        if self._runner is not None:
            raise RuntimeError("a channel starts once")
        loop = asyncio.get_running_loop()
        self._first = loop.create_future() if wait else None
        self._runner = asyncio.create_task(self._run(), name=f"ytmaker-channel:{self.name}")
        if self._first is not None:
            await self._first

    async def close(self) -> None:
        """Close the socket and stop reconnecting; every stream ends without error."""
        self._closing.set()
        for stream in list(self.streams.values()):
            self.remove(stream, unsubscribe=False)
            stream.owner.stream_ended(stream, None)
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        self._set_state(ConnectionState.DISCONNECTED, reason="closed")

    # --- streams -------------------------------------------------------------------------

    def add(self, stream: TaskStream) -> None:
        """Subscribe `stream` now if connected, else at the next connect."""
        if stream.task_id in self.streams:
            raise ValueError(f"task {stream.task_id} is already subscribed on this channel")
        self.streams[stream.task_id] = stream
        self._subscribe_soon(stream)

    def remove(self, stream: TaskStream, *, unsubscribe: bool = True) -> None:
        stream.cancel_retry()
        if self.streams.get(stream.task_id) is stream:
            del self.streams[stream.task_id]
            if unsubscribe and self.state is ConnectionState.CONNECTED:
                self._to_unsubscribe.append(stream.task_id)
                self._make_room()

    def _subscribe_soon(self, stream: TaskStream) -> None:
        stream.cancel_retry()
        if self.streams.get(stream.task_id) is stream and stream not in self._to_subscribe:
            self._to_subscribe.append(stream)
            self._outbox.set()

    def _make_room(self) -> None:
        """A subscription was let go: one stream waiting for room is asked again (after the
        unsubscribe, which the gateway handles first)."""
        while self._waiting:
            stream = self._waiting.popleft()
            if self.streams.get(stream.task_id) is stream:
                self._subscribe_soon(stream)
                break
        self._outbox.set()

    def _next_frame(self) -> str | None:
        """The next subscription frame `_pace` may send: unsubscribes first (they make room),
        then subscribes while fewer than SUBSCRIBES_IN_FLIGHT wait for their answer."""
        if self._to_unsubscribe:
            return protocol.unsubscribe_frame(self._to_unsubscribe.popleft())
        while self._to_subscribe and len(self._asked) < protocol.SUBSCRIBES_IN_FLIGHT:
            stream = self._to_subscribe.popleft()
            if self.streams.get(stream.task_id) is stream:
                self._asked.add(stream.task_id)
                since, epoch = stream.cursor.request()
                return protocol.subscribe_frame(stream.task_id, since, epoch)
        return None

    async def _pace(self, greeted: asyncio.Event) -> None:
        """Send the subscription frames of this connection at the pace its greeting allows
        (`protocol.subscription_frames_per_second`): the gateway closes a client that breaks
        its limits again and again (1008)."""
        await greeted.wait()
        while True:
            frame = self._next_frame()
            if frame is None:
                self._outbox.clear()
                await self._outbox.wait()
                continue
            await self._send(frame)
            await asyncio.sleep(1.0 / self._frames_per_second)

    def _send_soon(self, frame: str) -> None:
        if self._ws is not None and self.state is ConnectionState.CONNECTED:
            self._in_background(self._send(frame))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send(self, frame: str) -> None:
        ws = self._ws
        if ws is None:
            return
        async with self._send_lock:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame)

    # --- the connection loop -------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        self._set_state(ConnectionState.CONNECTING)
        while not self._closing.is_set():
            try:
                await self._connect_and_serve()
                reason = _Ended("the connection closed")
            except _Ended as ended:
                reason = ended
            if self._closing.is_set():
                break
            if reason.final is not None:
                self._give_up(reason.final)
                return
            if self._useful():  # the connection had served: count attempts afresh
                attempt = 0
            attempt += 1
            if self._backoff.exhausted(attempt):
                self._give_up(ConnectionLost(f"gave up after {attempt - 1} attempts: {reason}"))
                return
            delay = self._backoff.delay(attempt)
            self._set_state(ConnectionState.RECONNECTING, attempt, delay, reason.reason)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
        if self._first is not None and not self._first.done():  # closed while `start` waits
            self._first.set_exception(ConnectionLost("the client was closed before it connected"))
        self._set_state(ConnectionState.DISCONNECTED, reason="closed")

    def _give_up(self, error: YtmakerError) -> None:
        if self._first is not None and not self._first.done():
            self._first.set_exception(error)
        for stream in list(self.streams.values()):
            self.remove(stream, unsubscribe=False)
            stream.owner.stream_ended(stream, error)
        self._set_state(ConnectionState.DISCONNECTED, reason=str(error))

    def _connect_url(self) -> str:
        """The URL of the next connection: with the last one's client id, when it had one, so
        that the gateway restores its streams (decision 0141)."""
        if not self.restores_sessions or self.client_id is None:
            return self.url
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}old_client_id={quote(self.client_id, safe='')}"

    async def _connect_and_serve(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            ws = await connect(
                self._connect_url(),
                additional_headers=headers,
                open_timeout=self.options.open_timeout,
                close_timeout=self.options.close_timeout,
                ping_interval=None,  # the heartbeat is the protocol's own (docs/protocol.md)
                max_size=16 * 1024 * 1024,
                logger=_WithoutToken(self.token),
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403) and self._first is not None and not self._first.done():
                raise _Ended(
                    f"refused with HTTP {status}",
                    final=AuthenticationError(f"the gateway refused the connection ({status})"),
                ) from None
            raise self._first_failure(f"refused with HTTP {status}") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise self._first_failure(f"cannot connect: {type(exc).__name__}: {exc}") from None
        self._ws = ws
        try:
            await self._serve(ws)
        finally:
            self._ws = None
            with contextlib.suppress(Exception):
                await ws.close()

    def _first_failure(self, reason: str) -> _Ended:
        """The first connection's failure is the caller's error; later ones are retried."""
        if self._first is not None and not self._first.done():
            return _Ended(reason, final=ConnectionLost(f"{self.url}: {reason}"))
        return _Ended(reason)

    async def _serve(self, ws: ClientConnection) -> None:
        liveness = self.options.liveness()
        liveness.start(time.monotonic())
        greeted = asyncio.Event()
        tasks = (
            asyncio.create_task(self._read(ws, liveness, greeted)),
            asyncio.create_task(self._heartbeat(ws, liveness, greeted)),
            asyncio.create_task(self._pace(greeted)),
        )
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc

    async def _heartbeat(
        self, ws: ClientConnection, liveness: protocol.Liveness, greeted: asyncio.Event
    ) -> None:
        # A socket that talks but never says `connected` (not the gateway: an echo service
        # at a wrong URL answers every ping) is never silent: it gets `open_timeout` to greet.
        greet_by = time.monotonic() + self.options.open_timeout
        while True:
            wait = liveness.next_check(time.monotonic())
            if not greeted.is_set():
                wait = min(wait, max(0.01, greet_by - time.monotonic()))
            await asyncio.sleep(wait)
            now = time.monotonic()
            if not greeted.is_set() and now >= greet_by:
                raise self._first_failure(
                    f"no `connected` within {self.options.open_timeout:g}s of opening"
                )
            if liveness.dead(now):
                raise self._first_failure(
                    f"no message for {liveness.timeout:g}s (heartbeat timeout)"
                )
            if liveness.ping_due(now):
                liveness.sent(now)
                await self._send(protocol.PING_FRAME)

    async def _read(
        self, ws: ClientConnection, liveness: protocol.Liveness, greeted: asyncio.Event
    ) -> None:
        try:
            async for frame in ws:
                liveness.received(time.monotonic())
                try:
                    msg = protocol.parse(frame)
                except protocol.ProtocolViolation as exc:
                    log.warning("ignored a bad frame from the gateway: %s", exc)
                    continue
                if not greeted.is_set() and msg.type in ("connected", "reconnected"):
                    greeted.set()
                    await self._connected(msg)
                    continue
                self._dispatch(msg)
        except ConnectionClosed:
            pass
        raise self._closed(ws)

    def _closed(self, ws: ClientConnection) -> _Ended:
        code, why = ws.close_code, ws.close_reason or ""
        reason = f"closed by the gateway ({code}{': ' + why if why else ''})"
        if code == protocol.CLOSE_UNAUTHORIZED:
            refused = AuthenticationError(f"the gateway refused the token: {why}")
            return _Ended(reason, final=refused)
        if code == protocol.CLOSE_FORBIDDEN and self._on_refused is not None:
            if self._on_refused(why or "forbidden"):
                return _Ended(reason)
            return _Ended(reason, final=SubscriptionError("forbidden", why or "forbidden"))
        return self._first_failure(reason)  # closed before `connected`: the caller's error

    def _useful(self) -> bool:
        """Whether the connection that just ended had served: it delivered an update, or it
        stayed up for `stable_after` seconds. A gateway that greets and closes at once (or
        1013s without progress) keeps the backoff growing towards `max_attempts`."""
        up_since, self._up_since = self._up_since, None
        delivered, self._delivered = self._delivered, False
        if up_since is None:
            return False
        return delivered or time.monotonic() - up_since >= self.options.stable_after

    async def _connected(self, msg: ServerMessage) -> None:
        self.connections += 1
        self._up_since = time.monotonic()
        self._frames_per_second = protocol.subscription_frames_per_second(msg)
        self.client_id = protocol.client_id(msg)
        self._set_state(ConnectionState.CONNECTED)
        if self._first is not None and not self._first.done():
            self._first.set_result(None)
        # A new socket holds only what the gateway restored (`reconnected`): every other
        # stream is asked for again, in order; each restored one waits for its `subscribed`.
        self._to_unsubscribe.clear()
        self._to_subscribe.clear()
        self._asked.clear()
        self._waiting.clear()
        restored = protocol.restored_tasks(msg)
        for stream in list(self.streams.values()):
            stream.awaiting_answer = True
            stream.restoring = stream.task_id in restored
            if not stream.restoring:
                self._subscribe_soon(stream)
        self._to_unsubscribe.extend(sorted(restored - self.streams.keys()))
        self._restore_pending = bool(restored)
        if msg.type == "reconnected":
            self.sessions_restored += 1
            # The gateway restores every stream before it reads a message of ours: by the
            # `pong` of this ping, each restored `subscribed` has come.
            self._send_soon(protocol.PING_FRAME)
        if self._on_connected is not None:
            self._in_background(self._on_connected())

    # --- messages ------------------------------------------------------------------------

    def _dispatch(self, msg: ServerMessage) -> None:
        if msg.type == "ping":
            self._send_soon(protocol.pong_frame(msg))
            return
        if msg.type == "pong" and self._restore_pending:
            self._restore_pending = False
            for listed in list(self.streams.values()):
                self._not_restored(listed)  # the gateway skipped it
            return
        if msg.task_id in self._asked and _answers_subscribe(msg):
            self._asked.discard(msg.task_id)
            self._outbox.set()
        stream = self.streams.get(msg.task_id or "")
        if stream is None:
            if self._on_message is not None:
                self._on_message(msg)
            elif msg.type == "error":
                log.warning("the gateway said: %s", msg.payload.get("message", msg.payload))
            return
        if msg.type == "subscribed":
            if not msg.payload.get("restored"):
                stream.awaiting_answer = False
                stream.refused_since = None
                stream.cursor.subscribed(msg.payload)
            elif stream.restoring:
                stream.restoring = False
                if stream.cursor.takes_restored(msg.payload):
                    stream.awaiting_answer = False
                    self.streams_restored += 1
                else:
                    self._subscribe_soon(stream)  # ours replaces it; until its answer, ignored
        elif stream.awaiting_answer and (msg.type == "snapshot" or msg.is_update):
            log.debug("ignored a message of an earlier subscription of %s", stream.task_id)
        elif msg.type == "snapshot":
            self._deliver(stream, stream.cursor.snapshot(msg))
        elif msg.is_update:
            try:
                update = protocol.to_update(msg)
            except protocol.ProtocolViolation as exc:
                log.warning("ignored a bad update from the gateway: %s", exc)
                return
            owed = stream.cursor.missing_snapshot(stream.task_id)
            if owed is not None:
                self._deliver(stream, owed)
            if stream.cursor.accept(update):
                self._deliver(stream, update)
        elif msg.type == "error" and not msg.error_details.get("restored"):
            self._refused(stream, msg)
        elif msg.type == "error" and msg.offset is None:
            self._not_restored(stream)  # a restore refused: our own subscribe decides

    def _not_restored(self, stream: TaskStream) -> None:
        """A stream the gateway was to restore and did not: subscribe it ourselves."""
        if stream.restoring:
            stream.restoring = False
            self._subscribe_soon(stream)

    def _deliver(self, stream: TaskStream, item: Item) -> None:
        self._delivered = True
        stream.owner.deliver(item)
        if item.terminal:  # nothing follows a finished task: free the gateway's subscription
            self.remove(stream)
            stream.owner.stream_ended(stream, None)

    def _refused(self, stream: TaskStream, msg: ServerMessage) -> None:
        code, text = msg.error_code, str(msg.payload.get("message", ""))
        stream.restoring = False  # answered (a gateway that did not mark a restore's refusal)
        now = time.monotonic()
        if stream.refused_since is None:
            stream.refused_since = now
        within = now - stream.refused_since < self.options.refusal_window
        if code == "too_many_subscriptions" and stream.waits_for_room:
            self._waiting.append(stream)
            return
        if code in protocol.RETRYABLE_REFUSALS or (code == "forbidden" and within):
            delay = self.options.retry_delay
            stream.cancel_retry()
            stream.retry = asyncio.get_running_loop().call_later(
                delay, self._subscribe_soon, stream
            )
            return
        self.remove(stream, unsubscribe=False)
        error = SubscriptionError(code or "refused", text, task_id=stream.task_id)
        stream.owner.stream_ended(stream, error)

    def _set_state(
        self, state: ConnectionState, attempt: int = 0, delay: float = 0.0, reason: str = ""
    ) -> None:
        if state is self.state and state is not ConnectionState.RECONNECTING:
            return
        self.state = state
        try:
            self._on_state(StateChange(state, self.name, attempt, delay, reason))
        except Exception:
            log.exception("a connection-state listener raised")


def _answers_subscribe(msg: ServerMessage) -> bool:
    """Whether `msg` answers a subscribe of ours: its `subscribed`, or a refusal (an `error`
    without an offset) that is not about a stream restored for an old session."""
    if msg.type == "subscribed":
        return not msg.payload.get("restored")
    return msg.type == "error" and msg.offset is None and not msg.error_details.get("restored")

"""The `/progress` namespace (docs/protocol.md "Socket.IO"): `join` / `leave` a task's room,
`ping` → `pong`, `cancel_task` / `pause_task` / `resume_task`; the server sends `subscribed`,
`snapshot`, `progress`, `status`, `error`, `unsubscribed`, `ack`, `pong` as on the WebSocket.

Authentication is the WebSocket's: a JWT in `auth.token`, the Authorization header or the
deprecated `token` query parameter (counted: a URL ends up in logs); without one the
connection is refused (`connect_error` with `message` and `data: {code: "unauthorized"}`).
A client that reconnects with Socket.IO's `auth.pid` and `auth.offset` (the position string
of the last event it handled) gets its tasks back, each resumed after the offset it had
(docs/decisions/0061-socketio-recovery.md).

Every request answers through its acknowledgement (`{ok: true, ...}` or `{ok: false, error}`);
a failed one is also sent as an `error` event, for clients that ask without an ack. `join` and
`leave` are acknowledged only once their `subscribed` / `unsubscribed` event is written: from
then on, the position string the client holds names the change, so a reconnect keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import socketio
from aiokafka.errors import KafkaError

from ytmaker_gateway import metrics
from ytmaker_gateway.auth import AuthError, authenticate, bearer
from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.rules.errors import GatewayError
from ytmaker_gateway.rules.limits import CONNECTION_RETRY_AFTER_S
from ytmaker_gateway.rules.position import StreamPosition
from ytmaker_gateway.rules.protocol import (
    ClientMessage,
    ProtocolError,
    client_message,
    message,
)
from ytmaker_gateway.rules.session import Close
from ytmaker_gateway.sio.client import SioClient, gateway_error
from ytmaker_gateway.sio.positions import BadPositions, encodable, parse

if TYPE_CHECKING:
    from ytmaker_gateway.sio.server import RecoveringServer

log = logging.getLogger(__name__)

NAMESPACE = "/progress"

#: Socket.IO event → the WebSocket action it stands for.
ACTIONS = {
    "join": "subscribe",
    "leave": "unsubscribe",
    "cancel_task": "cancel",
    "pause_task": "pause",
    "resume_task": "resume",
}


def room(task_id: str) -> str:
    return f"task:{task_id}"


class ProgressNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(self, gateway: Gateway) -> None:
        super().__init__(NAMESPACE)
        self.gateway = gateway
        self.clients: dict[str, SioClient] = {}

    @property
    def sio(self) -> RecoveringServer:
        server: RecoveringServer = self.server
        return server

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Route every event; unknown ones and malformed arguments get an `error`, never an
        exception."""
        if event == "connect":
            return await self._connect(args[0], args[1], args[2] if len(args) > 2 else None)
        if event == "disconnect":
            await self.disconnect(args[0])
            return None
        sid, data = args[0], (args[1] if len(args) > 1 else None)
        client = self.clients.get(sid)
        if client is None:
            return None
        return await self.request(client, event, data)

    async def client_event(self, sid: str, data: Any) -> Any:
        """A client's event packet (`[event, argument, ...]`): its acknowledgement, or None
        for a socket that has no client (refused or gone). Never the server's own `connect`
        or `disconnect`, whatever the client names it (RecoveringServer)."""
        client = self.clients.get(sid)
        if client is None:
            return None
        items = data if isinstance(data, list) else []
        event = items[0] if items else None
        return await self.request(client, event, items[1] if len(items) > 1 else None)

    # --- connecting ----------------------------------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        """`connect`, refused with `internal` if it fails for a reason it does not name:
        python-socketio answers a connect handler's other exceptions with nothing at all, and
        the client would wait for its namespace forever."""
        try:
            await self.connect(sid, environ, auth)
        except socketio.exceptions.ConnectionRefusedError:
            raise
        except Exception:
            log.exception("socket.io connect failed", extra={"client_id": sid})
            await self.disconnect(sid)  # what it had registered goes
            raise socketio.exceptions.ConnectionRefusedError(
                "the gateway failed to open the connection: connect again",
                {"code": "internal", "retry_after": CONNECTION_RETRY_AFTER_S},
            ) from None

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        auth = auth if isinstance(auth, dict) else {}
        token = auth.get("token") if isinstance(auth.get("token"), str) else None
        token = token or bearer(environ.get("HTTP_AUTHORIZATION"))
        if token is None and (
            token := parse_qs(environ.get("QUERY_STRING", "")).get("token", [None])[0]
        ):
            metrics.TOKENS_IN_URL.labels("socketio").inc()
        try:
            principal = authenticate(self.gateway.tokens, token)
        except AuthError as exc:
            metrics.BAD_INPUT.labels("unauthorized").inc()
            raise socketio.exceptions.ConnectionRefusedError(
                str(exc)[:120], {"code": "unauthorized"}
            ) from None
        limit = self.gateway.settings.max_connections_per_user
        mine = sum(1 for c in self.clients.values() if c.principal.user == principal.user)
        if mine + self.gateway.sessions.open_count(principal.user) >= limit:
            metrics.BAD_INPUT.labels("too_many_connections").inc()
            raise socketio.exceptions.ConnectionRefusedError(
                f"at most {limit} open connections per user: close one, then retry",
                {"code": "too_many_connections", "retry_after": CONNECTION_RETRY_AFTER_S},
            )
        client = SioClient(sid, self.gateway, principal, self._emitter(sid))
        self.clients[sid] = client
        metrics.CONNECTED_CLIENTS.inc()
        pid, recovered, restored = await self._recover(client, auth)
        client.hello = {
            "client_id": sid,
            "pid": pid,
            "recovered": recovered,
            "restored": restored,
            "heartbeat_interval": self.gateway.settings.heartbeat_interval_s,
            "limits": client.rules.limits.announced(),
        }
        self.sio.announce(sid, pid, client)
        log.info(
            "socket.io client connected",
            extra={
                "client_id": sid,
                "user": principal.user,
                "recovered": recovered,
                "restored": len(restored),
                "asked": auth.get("offset") is not None,
            },
        )

    async def _recover(
        self, client: SioClient, auth: dict[str, Any]
    ) -> tuple[str, bool, list[str]]:
        """Connection state recovery: the tasks of `auth.offset` the client may still watch,
        each to be re-joined after its offset once the writer runs (`client.restoring`).
        Returns (pid, whether everything missed can be replayed, the tasks re-joined): the
        pid is kept only when it can."""
        pid, offset = auth.get("pid"), auth.get("offset")
        if not isinstance(pid, str) or not pid or len(pid) > 64 or offset is None:
            return uuid.uuid4().hex, False, []
        try:
            wanted = parse(offset, self.gateway.settings.max_subscriptions)
        except BadPositions as exc:
            metrics.BAD_INPUT.labels("invalid_field").inc()
            metrics.RECONNECTS.labels("false").inc()
            client.error("invalid_field", f"cannot recover: {exc}", restored=True)
            return uuid.uuid4().hex, False, []
        client.positions.tasks = dict(wanted.tasks)

        async def check(task_id: str, since: int | None) -> bool | GatewayError:
            """Whether what the client missed of the task is held; the refusal if it may
            not watch it."""
            try:
                await self.gateway.access.task(client.principal, task_id, wait=True)
                position = StreamPosition(since, wanted.epoch)
                return await self.gateway.streams.resumable(task_id, position)
            except GatewayError as exc:
                return exc
            except (TimeoutError, KafkaError):
                return False

        # All at once: each unknown task may be waited for (`unknown_task_wait_s`), and the
        # connect lasts one wait, however many tasks it restores.
        async with asyncio.TaskGroup() as group:
            checks = {
                task_id: group.create_task(check(task_id, since))
                for task_id, since in wanted.tasks.items()
            }
        all_held = True
        for task_id, since in wanted.tasks.items():
            held = checks[task_id].result()
            if isinstance(held, GatewayError):
                client.error(held.code, held.message, task_id, restored=True, **held.details)
                client.positions.tasks.pop(task_id, None)
                all_held = False
                continue
            all_held = all_held and held
            client.restoring.append((task_id, since))
            await self.enter_room(client.sid, room(task_id))
        metrics.RECONNECTS.labels(str(all_held).lower()).inc()
        self.gateway.reconnects += 1
        self.gateway.reconnects_restored += int(all_held)
        restored = [task_id for task_id, _ in client.restoring]
        return (pid if all_held else uuid.uuid4().hex), all_held, restored

    async def disconnect(self, sid: str) -> None:
        client = self.clients.pop(sid, None)
        if client is None:
            return
        self.sio.forget(sid)
        await client.close()
        metrics.CONNECTED_CLIENTS.dec()

    def _emitter(self, sid: str) -> Any:
        async def emit(event: str, data: Any) -> None:
            await self.emit(event, data, to=sid)

        return emit

    # --- requests ------------------------------------------------------------------------

    async def request(self, client: SioClient, event: object, data: Any) -> dict[str, Any]:
        """Answer one client event; the return value is the acknowledgement."""
        task_id = data.get("task_id") if isinstance(data, dict) else None
        task_id = task_id if isinstance(task_id, str) else None
        if not client.rules.within_rate(time.monotonic()):
            text = "too many messages per second"
            metrics.BAD_INPUT.labels("rate_limited").inc()
            if isinstance(client.rules.violation("rate_limited", text), Close):
                await self.sio.drop_transport(client.sid)
            return self._refuse(client, "rate_limited", text, task_id)
        try:
            if event == "ping":
                client.queue.push(message("pong", {"timestamp": time.time()}))
                return {"ok": True, "timestamp": time.time()}
            # A raw packet may name its event with any JSON value, not only a string.
            action = ACTIONS.get(event) if isinstance(event, str) else None
            if action is None:
                shown = event[:40] if isinstance(event, str) else type(event).__name__
                raise ProtocolError("unknown_event", f"unknown event {shown!r}", task_id)
            if not isinstance(data, dict):
                raise ProtocolError("invalid_message", f"'{event}' takes an object", task_id)
            # Validated as decoded: encoding it again for the WebSocket's parser failed on
            # what Socket.IO may hold and JSON text may not (deep nesting, binary attachments).
            msg = client_message({**data, "action": action})
            return await self._act(client, msg)
        except ProtocolError as exc:
            metrics.BAD_INPUT.labels(exc.code).inc()
            return self._refuse(client, exc.code, exc.message, exc.task_id or task_id)
        except GatewayError as exc:
            return self._refuse(client, exc.code, exc.message, task_id, **exc.details)

    def _refuse(
        self, client: SioClient, code: str, text: str, task_id: str | None, **details: Any
    ) -> dict[str, Any]:
        client.error(code, text, task_id, **details)
        error = {"code": code, "message": text, "details": details}
        return {"ok": False, "task_id": task_id, "error": error}

    async def _act(self, client: SioClient, msg: ClientMessage) -> dict[str, Any]:
        task_id = msg.task_id
        assert task_id is not None
        if msg.action == "subscribe":
            if not encodable(task_id):
                raise ProtocolError("invalid_field", "'task_id' may not hold , | or :", task_id)
            if not client.rules.may_subscribe(task_id, client.watching):
                metrics.BAD_INPUT.labels("too_many_subscriptions").inc()
                raise ProtocolError("too_many_subscriptions", "subscription limit reached", task_id)
            subscribed = client.expect("subscribed", task_id)
            joined = False
            try:
                joined = await client.subscribe(task_id, msg.position)
            finally:
                if not joined:  # refused, or failed: nobody waits for it
                    client.forget("subscribed", task_id, subscribed)
            if not joined:
                return {"ok": False, "task_id": task_id, "error": {"code": "replay_failed"}}
            await self.enter_room(client.sid, room(task_id))
            await client.written(subscribed)
            return {"ok": True, "task_id": task_id}
        if msg.action == "unsubscribe":
            client.drop(task_id)
            await self.leave_room(client.sid, room(task_id))
            unsubscribed = client.expect("unsubscribed", task_id)
            client.queue.push(message("unsubscribed", {"task_id": task_id}, task_id))
            await client.written(unsubscribed)
            return {"ok": True, "task_id": task_id}
        result = await client.control(task_id, msg.action, msg.reason)
        return {"ok": True, **result}


__all__ = ["NAMESPACE", "ProgressNamespace", "gateway_error"]

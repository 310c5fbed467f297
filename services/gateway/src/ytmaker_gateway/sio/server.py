"""The Socket.IO server mounted in the gateway's ASGI app at `/socket.io/`.

python-socketio does not implement Socket.IO's connection state recovery, whose one visible
piece on the wire is a `pid` in the namespace's CONNECT packet (socket.io protocol v5): the
client keeps it and sends it back with the last offset it saw. `RecoveringServer` adds the
`pid` chosen by the namespace to that packet, and starts the connection's writer right after
it, so that no event can precede the CONNECT (docs/decisions/0061-socketio-recovery.md).
"""

from __future__ import annotations

from typing import Any

import orjson
import socketio
from socketio import packet
from starlette.types import ASGIApp, Receive, Scope, Send

from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.sio.client import SioClient
from ytmaker_gateway.sio.namespace import NAMESPACE, ProgressNamespace

PATH = "socket.io"


class _Json:
    """orjson behind the `json` module interface python-socketio expects."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj, default=str).decode()

    @staticmethod
    def loads(text: str | bytes, **_: Any) -> Any:
        return orjson.loads(text)


class RecoveringServer(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pending: dict[str, tuple[str, SioClient]] = {}

    def announce(self, sid: str, pid: str, client: SioClient) -> None:
        """The namespace accepted `sid`: its CONNECT carries `pid`; the writer starts after."""
        self._pending[sid] = (pid, client)

    def forget(self, sid: str) -> None:
        self._pending.pop(sid, None)

    async def drop_transport(self, sid: str) -> None:
        """Close the client's whole connection (it reconnects and recovers)."""
        eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
        if eio_sid is not None:
            await self.eio.disconnect(eio_sid)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        """A client's event on `/progress` goes to the namespace as a request, whatever its
        name: python-socketio would hand an event a client names `connect` or `disconnect` to
        the handlers of the real ones (a second client for the socket, the first one's
        subscriptions left registered; a client forgotten while its transport stays open,
        outside the per-user cap)."""
        if namespace != NAMESPACE:
            await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)
            return
        handler: ProgressNamespace = self.namespace_handlers[NAMESPACE]
        answer = await handler.client_event(sid, data)
        if id is not None:
            await server._send_packet(
                eio_sid,
                self.packet_class(
                    packet.ACK, namespace=namespace, id=id, data=[] if answer is None else [answer]
                ),
            )

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        pending = None
        if pkt.packet_type == packet.CONNECT and isinstance(pkt.data, dict):
            pending = self._pending.pop(str(pkt.data.get("sid")), None)
            if pending is not None:
                pkt.data = {**pkt.data, "pid": pending[0]}
        await super()._send_packet(eio_sid, pkt)
        if pending is None:
            return
        client = pending[1]
        namespace: ProgressNamespace = self.namespace_handlers[NAMESPACE]
        if eio_sid not in self.eio.sockets:
            # The client left while its connect was handled: python-socketio sends it no
            # disconnect event (it was not connected yet), so let go of it here.
            await namespace.disconnect(client.sid)
            return

        async def drop() -> None:
            await self.drop_transport(client.sid)

        client.start(drop)


def build_server(gateway: Gateway) -> RecoveringServer:
    settings = gateway.settings
    server = RecoveringServer(
        async_mode="asgi",
        json=_Json,
        async_handlers=False,  # one client's events are handled in order, like the WebSocket's
        cors_allowed_origins=settings.cors_origins or None,
        max_http_buffer_size=settings.max_frame_bytes,
        ping_interval=settings.heartbeat_interval_s,
        ping_timeout=settings.heartbeat_interval_s,
    )
    server.register_namespace(ProgressNamespace(gateway))
    return server


class SocketIOMount:
    """ASGI middleware: `/socket.io/` goes to the Socket.IO server, the rest to `app`."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.server = build_server(gateway)
        self._app = socketio.ASGIApp(self.server, other_asgi_app=app, socketio_path=PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

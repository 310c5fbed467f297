"""What every request meets before any route (docs/protocol.md "Limits at the edge";
docs/decisions/0041-strict-input-at-the-gateway.md, 0042-closed-doors-at-the-gateway.md):

- a REST body larger than `max_body_bytes` is refused with 413 before it is read whole: at once
  when `Content-Length` says so, else as soon as the bytes received pass the limit. This runs
  before authentication, so a caller without a token cannot make the gateway read a large body;
- in the anonymous development mode, every request (HTTP or WebSocket) must name a loopback
  `Host` and, when it sends one, a loopback `Origin`: a web page elsewhere, or a DNS name
  rebound to 127.0.0.1, cannot act as the development user.

A pure ASGI middleware, so that WebSocket traffic passes through untouched otherwise.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ytmaker_gateway import metrics
from ytmaker_gateway.rules.protocol import CLOSE_FORBIDDEN, selected_subprotocol


class PayloadTooLarge(HTTPException):
    """A body past the limit: raised while it is being received (an HTTPException, so that the
    framework's body parsing passes it on untouched)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is larger than {limit} bytes")


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine's
    loopback: `localhost`, 127.0.0.0/8, ::1."""
    host = host.strip().lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_part(authority: str) -> str:
    """The host of `host[:port]` (IPv6 in brackets)."""
    if authority.startswith("["):
        return authority[: authority.find("]") + 1] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def loopback_request(host: str | None, origin: str | None) -> bool:
    """Whether a request with these `Host` and `Origin` headers comes from this machine's own
    pages: a loopback Host, and no Origin or an http(s) one on a loopback host."""
    if not host or not is_loopback_host(_host_part(host)):
        return False
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
        hostname = parts.hostname
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https") and hostname is not None and (is_loopback_host(hostname))
    )


def _error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "details": {}}})


class EdgeGuard:
    """The body limit, and the loopback check of the development mode (`loopback_only`)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, loopback_only: bool) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.loopback_only and not loopback_request(headers.get("host"), headers.get("origin")):
            metrics.BAD_INPUT.labels("not_loopback").inc()
            await self._refuse(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            metrics.BAD_INPUT.labels("too_large").inc()
            await _respond(send, 413, _error_body("payload_too_large", self._too_large()))
            return
        await self._counted(scope, receive, send)

    def _too_large(self) -> str:
        return f"the body is larger than {self.max_body_bytes} bytes"

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    metrics.BAD_INPUT.labels("too_large").inc()
                    raise PayloadTooLarge(self.max_body_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except PayloadTooLarge:
            if started:
                raise
            await _respond(send, 413, _error_body("payload_too_large", self._too_large()))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        text = "the development mode answers requests from this machine only (loopback Host/Origin)"
        if scope["type"] == "http":
            await _respond(send, 403, _error_body("forbidden", text))
            return
        # As for a bad token: accept first, so that browsers see the close code.
        if (await receive())["type"] != "websocket.connect":
            return
        subprotocol = selected_subprotocol(scope.get("subprotocols", []))
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN, "reason": text[:120]})


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

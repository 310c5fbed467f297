"""The WebSocket endpoints (docs/protocol.md): `/api/v1/ws` and
`/api/v1/projects/{id}/progress`.

Each accepts the socket, authenticates it (4401 without a valid token) and admits it: a user
past `max_connections_per_user` open sockets is told so and closed with 4429 before anything
else happens. The accepted connection is then a `Connection` (api/connection.py).

`StreamSockets` is a plain ASGI app, not a FastAPI route: the application hands it these two
paths beneath the edge guard alone (app.py, decision 0108). Through FastAPI's routing and
middleware a connection held two dozen suspended coroutines, their closures and exit stacks
for as long as it was open, ~70 objects of the 237 each connection added to what the gateway's
full garbage collection walks. Nothing on that way acts on a WebSocket: the security headers,
the body limit and CORS are HTTP's, and no route of these two takes a dependency.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ytmaker_gateway import metrics
from ytmaker_gateway.api.connection import Connection
from ytmaker_gateway.auth import AuthError, Principal, authenticate, bearer
from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.rules.ids import is_client_id, is_uuid
from ytmaker_gateway.rules.limits import CONNECTION_RETRY_AFTER_S
from ytmaker_gateway.rules.protocol import (
    CLOSE_POLICY,
    CLOSE_TOO_MANY_CONNECTIONS,
    CLOSE_UNAUTHORIZED,
    error_message,
    offered_token,
    selected_subprotocol,
)


def route_path(scope: Scope) -> str:
    """The path a router matches: without the `root_path` a proxy put in front of it, as
    Starlette strips it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def is_stream(scope: Scope) -> bool:
    """Whether `scope` opens one of the two WebSocket streams."""
    return scope["type"] == "websocket" and _match(route_path(scope)) is not None


class StreamSockets:
    """The ASGI app of the streams (`STREAMS`); `is_stream(scope)` must hold for what it is
    given."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _match(route_path(scope))
        if found is None:
            raise LookupError(f"not a stream: {scope['path']!r} (see is_stream)")
        endpoint, params = found
        await endpoint(WebSocket(scope, receive, send), self.gateway, **params)


async def _authenticate(ws: WebSocket, gateway: Gateway) -> Principal | None:
    """The principal of the token: in the Authorization header, else in a `bearer.<JWT>`
    subprotocol (a browser's way, decision 0133), else in the deprecated `token` query
    parameter; None (and the socket closed with 4401) when there is none or it is invalid.
    The socket is accepted first either way, with `ytmaker.v1` if offered (never the token): a
    refused handshake would show clients a bare HTTP 403, not the code."""
    offered = ws.scope.get("subprotocols", [])
    await ws.accept(subprotocol=selected_subprotocol(offered))
    token = bearer(ws.headers.get("authorization")) or offered_token(offered)
    if token is None and (token := ws.query_params.get("token")):
        metrics.TOKENS_IN_URL.labels("websocket").inc()
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
        await ws.send_text(
            error_message("too_many_connections", text, retry_after=CONNECTION_RETRY_AFTER_S)
        )
        await ws.close(CLOSE_TOO_MANY_CONNECTIONS, text[:120])
    return False


async def websocket(ws: WebSocket, gateway: Gateway) -> None:
    principal = await _authenticate(ws, gateway)
    if principal is None or not await _admit(ws, gateway, principal):
        return
    old_client_id = ws.query_params.get("old_client_id")
    await Connection(ws, gateway, principal).run(
        old_client_id if is_client_id(old_client_id) else None
    )


async def project_progress(ws: WebSocket, gateway: Gateway, project_id: str) -> None:
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


Endpoint: TypeAlias = Callable[..., Awaitable[None]]

#: The streams by path, as a FastAPI route would declare them; matched as its router would
#: (Starlette's `compile_path`: a path parameter is one segment).
STREAMS: dict[str, Endpoint] = {
    "/api/v1/ws": websocket,
    "/api/v1/projects/{project_id}/progress": project_progress,
}
_PATTERNS = [(compile_path(path)[0], endpoint) for path, endpoint in STREAMS.items()]


def _match(path: str) -> tuple[Endpoint, dict[str, str]] | None:
    for pattern, endpoint in _PATTERNS:
        if (found := pattern.match(path)) is not None:
            return endpoint, found.groupdict()
    return None

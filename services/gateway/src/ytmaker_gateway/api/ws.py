"""The WebSocket endpoints (docs/protocol.md): `/api/v1/ws` and
`/api/v1/projects/{id}/progress`.

Each accepts the socket, authenticates it (4401 without a valid token) and admits it: a user
past `max_connections_per_user` open sockets is told so and closed with 4429 before anything
else happens. The accepted connection is then a `Connection` (api/connection.py).
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket

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
)

router = APIRouter()


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
        await ws.send_text(
            error_message("too_many_connections", text, retry_after=CONNECTION_RETRY_AFTER_S)
        )
        await ws.close(CLOSE_TOO_MANY_CONNECTIONS, text[:120])
    return False


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

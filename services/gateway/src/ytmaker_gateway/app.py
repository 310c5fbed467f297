"""The FastAPI application: routers, error bodies, CORS, security headers, the live page,
the Socket.IO endpoint and health; the two WebSocket streams beside FastAPI (`GatewayApp`).
`create_app(gateway)` takes a built `Gateway` (see main.py), so tests can build one with
fakes."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ytmaker_gateway import metrics
from ytmaker_gateway.api import rest, runs
from ytmaker_gateway.api.edge import EdgeGuard
from ytmaker_gateway.api.ws import StreamSockets, is_stream
from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.rules.errors import GatewayError
from ytmaker_gateway.sio.server import SocketIOMount

WEB_DIR = Path(str(resources.files("ytmaker_gateway") / "web"))

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
        b"media-src 'self' blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    ),
]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response (pure ASGI: websockets pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class GatewayApp(FastAPI):
    """FastAPI, except for the two WebSocket streams: they meet the edge guard and go straight
    to `StreamSockets` (api/ws.py, decision 0108), so that an open connection holds none of
    the framework's routing and middleware. A middleware that must act on the streams too
    goes on their way (`streams`, in `create_app`) as well as on FastAPI's."""

    def __init__(self, *, streams: ASGIApp, **options: Any) -> None:
        super().__init__(**options)
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_stream(scope):
            scope["app"] = self
            await self._streams(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Any:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details or {}}}, status_code=status
    )


def create_app(gateway: Gateway, ready: Callable[[], bool] | None = None) -> GatewayApp:
    edge: dict[str, Any] = {
        "max_body_bytes": gateway.settings.max_body_bytes,
        "loopback_only": gateway.settings.dev_allow_anonymous,
    }
    app = GatewayApp(
        streams=EdgeGuard(StreamSockets(gateway), **edge),
        title="ytmaker gateway",
        version="1.0.0",
        description="Text to published video: start runs, control them, watch them live "
        "(docs/protocol.md).",
    )
    app.state.gateway = gateway
    app.include_router(rest.router)
    app.include_router(runs.router)

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> Any:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Any:
        metrics.BAD_INPUT.labels("invalid_request").inc()
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()[:20]
        ]
        return _error(422, "invalid_request", "the request is not valid", {"errors": problems})

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Any:
        if exc.status_code == 400:  # a body the framework could not even parse (not UTF-8)
            return _error(422, "invalid_request", "the body is not valid JSON", {"errors": []})
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        response = _error(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. a 405's `Allow`
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "gateway"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, str]:
        ok = gateway.hub.ready.is_set() and (ready is None or ready())
        response.status_code = 200 if ok else 503
        return {"status": "ready" if ok else "starting", "service": "gateway"}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The live page: plain files, no build step.
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/projects/{project_id}", include_in_schema=False)
    async def project_page(project_id: str) -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    if gateway.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=gateway.settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type"],
        )
    app.add_middleware(SocketIOMount, gateway=gateway)  # /socket.io/: the /progress namespace
    app.add_middleware(EdgeGuard, **edge)
    app.add_middleware(SecurityHeaders)
    return app

"""`/healthz`, `/readyz` and `/metrics` for every service, on a small HTTP server that runs in
the service's own event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ytmaker_shared.serving import Server, server_config

Readiness = Callable[[], bool]


def health_app(service: str, ready: Readiness) -> FastAPI:
    """Liveness answers while the loop runs; readiness asks `ready()` (connected, caught up)."""
    app = FastAPI(title=f"ytmaker {service} health", openapi_url=None, docs_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, str]:
        if ready():
            return {"status": "ready", "service": service}
        response.status_code = 503
        return {"status": "starting", "service": service}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


class HealthServer:
    """Serves `health_app` on host:port (port 0 picks a free one, see `.port`)."""

    def __init__(self, service: str, ready: Readiness, host: str, port: int) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._server = Server(server_config(health_app(service, ready)))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task

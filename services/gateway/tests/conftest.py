"""A gateway served in-process on a free port, with fakes for its neighbours: the progress
service's API (`FakeProgress`), the log (`FakeLog`, which is also the replay reader) and the
producer (`RecordingProducer`). Kafka itself is exercised in tests/integration/gateway."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ytmaker_gateway.access import Access, RecentTasks
from ytmaker_gateway.adapters.progress_api import ProgressApi
from ytmaker_gateway.app import create_app
from ytmaker_gateway.auth import mint_token
from ytmaker_gateway.commands import Commands
from ytmaker_gateway.context import Gateway
from ytmaker_gateway.fanout.hub import Hub
from ytmaker_gateway.fanout.streams import Streams
from ytmaker_gateway.sessions import SessionRegistry
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_gateway.testing import FakeLog, FakeProgress, RecordingProducer, wait_until
from ytmaker_shared.artifacts import open_store

SECRET = "unit-test-secret-0123456789abcdef0123456789"


@dataclass
class Harness:
    base: str
    ws: str
    gateway: Gateway
    fake: FakeProgress
    log: FakeLog
    producer: RecordingProducer
    http: httpx.AsyncClient

    def token(self, user: str = "alice", *roles: str) -> str:
        return mint_token(self.gateway.tokens, user, roles)

    def auth(self, user: str = "alice", *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, *roles)}"}


Factory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[Factory]:
    servers: list[tuple[uvicorn.Server, asyncio.Task[None], Harness]] = []

    async def start(**overrides: Any) -> Harness:
        values: dict[str, Any] = {
            "jwt_secret": SECRET,
            "unknown_task_wait_s": 0.3,
            "artifacts_url": f"file://{tmp_path / 'artifacts'}",
            "instance": "unit",
        } | overrides
        settings = GatewaySettings(**values)
        fake = FakeProgress()
        progress = ProgressApi("http://progress", transport=httpx.ASGITransport(app=fake.app()))
        access = Access(progress, RecentTasks(), settings.unknown_task_wait_s)
        hub = Hub(settings)
        log = FakeLog(hub, partitions=2)
        producer = RecordingProducer()
        gateway = Gateway(
            settings=settings,
            tokens=settings.token_config(),
            progress=progress,
            access=access,
            commands=Commands(producer, access, "gateway/unit"),
            hub=hub,
            streams=Streams(hub, log, settings.client_queue_size),
            sessions=SessionRegistry(settings.session_window_s, progress),
            artifacts=open_store(settings.artifacts_url),
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(gateway),
            ws="websockets-sansio",
            ws_max_size=settings.max_frame_bytes,
            log_level="warning",
            lifespan="off",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await wait_until(lambda: server.started, timeout=10, what="the server to start")
        base = f"http://127.0.0.1:{port}"
        harness = Harness(
            base,
            f"ws://127.0.0.1:{port}",
            gateway,
            fake,
            log,
            producer,
            httpx.AsyncClient(base_url=base, timeout=10),
        )
        servers.append((server, task, harness))
        return harness

    yield start
    for server, task, harness in servers:
        await harness.http.aclose()
        await harness.gateway.progress.close()
        server.should_exit = True
        await task

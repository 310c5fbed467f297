"""A gateway served in-process on a free port, with fakes for its neighbours: the progress
service's API (`FakeProgress`), the log (`FakeLog`, which is also the replay reader) and the
producer (`RecordingProducer`). Kafka itself is exercised in tests/integration/gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import (
    FakeLog,
    FakeProgress,
    RecordingProducer,
    RunningServer,
    build_gateway,
    make_update,
    start_server,
)
from tests.support.s3 import s3_bucket, s3_env, s3_server  # noqa: F401 - fixtures for S3 tests
from ytmaker_gateway.app import create_app
from ytmaker_gateway.auth import mint_token
from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.settings import GatewaySettings

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
    server: RunningServer

    def token(self, user: str = "alice", *roles: str) -> str:
        return mint_token(self.gateway.tokens, user, roles)

    def auth(self, user: str = "alice", *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, *roles)}"}

    def seed(self, task_id: str, owner: str = "alice", n: int = 5) -> list[int]:
        """Write `n` updates of the task to the log, folded into the read model; their
        offsets."""
        offsets = []
        for i in range(n):
            update = make_update(task_id, owner=owner, n=i, progress=i * 10)
            offset = self.log.append(update)
            self.fake.record(offset, update)
            offsets.append(offset)
        return offsets


Factory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[Factory]:
    running: list[tuple[RunningServer, Harness]] = []

    async def start(**overrides: Any) -> Harness:
        values: dict[str, Any] = {
            "jwt_secret": SECRET,
            "unknown_task_wait_s": 0.3,
            "artifact_dir": tmp_path / "artifacts",
            "instance": "unit",
        } | overrides
        settings = GatewaySettings(**values)
        fake = FakeProgress()
        producer = RecordingProducer()
        gateway = build_gateway(settings, fake.app(), producer)
        log = FakeLog(gateway.hub, partitions=2)
        gateway.streams.reader = log  # the fake log is also the replay reader
        server = await start_server(
            create_app(gateway), settings.max_frame_bytes, compression=settings.ws_compression
        )
        http = httpx.AsyncClient(base_url=server.base, timeout=10)
        harness = Harness(server.base, server.ws, gateway, fake, log, producer, http, server)
        running.append((server, harness))
        return harness

    yield start
    for server, harness in running:
        await harness.http.aclose()
        await harness.gateway.progress.close()
        await server.stop()

"""The Task-012 baseline as its design is written (decision 0114): a project row written per
update, `initial` read from it; and without its database, delivery alone. Real redis-server,
real SQLite, the baseline's own server process started by the benchmark's stack."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.baselines.redis_pubsub import Project, RedisPublisher, session_factory
from bench.harness.stacks import RedisStack
from tests.support.components import unavailable

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def _running(work: Path, *, database: bool) -> AsyncIterator[RedisStack]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (scripts/apt-packages.txt)")
    stack = RedisStack(work, database=database)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


@pytest.fixture(params=[True, False], ids=["redis", "redis-nodb"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RedisStack]:
    async with _running(tmp_path, database=request.param) as stack:
        yield stack


async def _next_progress(ws: ClientConnection, deadline: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(deadline):
        while True:
            message = orjson.loads(await ws.recv())
            if message["type"] == "progress":
                return dict(message["data"])


async def test_an_update_is_stored_when_the_design_has_its_database_and_always_delivered(
    stack: RedisStack,
) -> None:
    env = stack.producer_env()
    publisher = RedisPublisher(env["BENCH_REDIS_URL"], env.get("BENCH_REDIS_DATABASE_URL"))
    try:
        publisher.create_projects(["p-1"])
        await publisher.update_progress("p-1", "images_generating", 40.0, "drawing", seq=1)
        url = f"{stack.base_url.replace('http', 'ws', 1)}/projects/p-1/progress"
        async with connect(url) as ws:
            initial = orjson.loads(await ws.recv())
            assert initial["type"] == "initial"
            if stack.name == "redis":  # script (20) done, images 40 % of 25: overall 30
                assert initial["data"]["status"] == "images_generating"
                assert initial["data"]["progress"] == 30
                assert initial["data"]["updated_at"]
            else:
                assert initial["data"] == {"project_id": "p-1", "status": None}
            await publisher.update_progress("p-1", "rendering", 50.0, "rendering", seq=2)
            data = await _next_progress(ws)
            assert (data["stage"], data["progress"], data["seq"]) == ("rendering", 77, 2)
        if stack.name == "redis":
            sessions = session_factory(env["BENCH_REDIS_DATABASE_URL"])
            with sessions() as db:
                row = db.execute(select(Project).where(Project.id == "p-1")).scalar_one()
            assert (row.status, row.progress) == ("rendering", 77)
    finally:
        await publisher.close()


async def test_the_design_lets_a_socket_for_a_project_it_does_not_know_go(
    tmp_path: Path,
) -> None:
    async with _running(tmp_path, database=True) as stack:
        url = f"{stack.base_url.replace('http', 'ws', 1)}/projects/nobody/progress"
        async with connect(url) as ws:
            with pytest.raises(ConnectionClosed):  # not a message: the socket ends
                async with asyncio.timeout(10):
                    await ws.recv()

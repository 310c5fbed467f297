"""The Python SDK's reconnects against a real gateway (decision 0141): after its connection is
cut, the SDK reconnects with `old_client_id`; the streams the gateway restores in the handshake
are kept when they resume the SDK's position exactly, and asked for again when not. Either way
every update reaches the caller once, in order. The frames the SDK sends are read from
websockets' own debug log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from tests.support.gateway import make_update, stable_id
from tests.support.proxy import Proxy
from tests.support.wait import wait_until
from ytmaker_client import ClientOptions, Item, ProgressClient, Update
from ytmaker_gateway import metrics
from ytmaker_gateway.core.sessions import Session
from ytmaker_shared.events import new_event_id

from .conftest import Cluster, Replica

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

TASKS = 20
# Backoff from 0.5 s: time for the gateway to see the cut and record the session it restores.
OPTIONS = ClientOptions(backoff_base=1.0, backoff_cap=1.0, heartbeat_interval=1.0)


def restores() -> float:
    return float(metrics.RECONNECTS.labels("true")._value.get())


def subscribes_sent(caplog: pytest.LogCaptureFixture) -> int:
    """Subscribe frames the SDK has sent so far (websockets logs each frame it sends)."""
    return sum(
        1
        for r in caplog.records
        if r.name == "websockets.client"
        and r.getMessage().startswith("> TEXT")
        and '"action": "subscribe"' in r.getMessage()
    )


def open_session(replica: Replica) -> Session:
    [session] = replica.gateway.sessions.active.values()
    return session


async def next_items(streams: Sequence[AsyncIterator[Item]]) -> list[Item]:
    return await asyncio.wait_for(asyncio.gather(*(anext(s) for s in streams)), 30)


async def write_all(cluster: Cluster, tasks: list[str], project_id: str, n: int) -> list[int]:
    """Update `n` of every task; their offsets."""
    return [
        await cluster.write(make_update(t, project_id=project_id, n=n, progress=n)) for t in tasks
    ]


@pytest.mark.parametrize(
    ("heartbeat_s", "kept"),
    [(0.5, True), (30.0, False)],
    ids=["acknowledged: kept", "nothing acknowledged: asked for again"],
)
async def test_a_cut_connection_resumes_every_stream_exactly(
    cluster: Cluster, caplog: pytest.LogCaptureFixture, heartbeat_s: float, kept: bool
) -> None:
    """With heartbeats every 0.5 s, the client's pongs acknowledge what it read, and the
    gateway restores each stream after it: kept, no subscribe sent after the cut. With none
    answered yet (30 s), each stream is restored from the start of its run (`since: -1`),
    which does not resume the SDK's position: each is asked for again."""
    caplog.set_level(logging.DEBUG, logger="websockets.client")
    replica = await cluster.replica(heartbeat_interval_s=heartbeat_s)
    port = int(replica.server.base.rsplit(":", 1)[1])
    proxy = Proxy("127.0.0.1", port).start()
    project_id = stable_id(f"sessions-{new_event_id()}")
    tasks = [new_event_id() for _ in range(TASKS)]
    try:
        first = await write_all(cluster, tasks, project_id, 1)
        async with ProgressClient(proxy.url, cluster.token(), options=OPTIONS) as client:
            subs = [await client.subscribe_task(t, since=-1) for t in tasks]
            streams = [aiter(s) for s in subs]
            got = await next_items(streams)
            assert [(i.task_id, i.offset) for i in got] == list(zip(tasks, first, strict=True))
            if kept:  # every stream acknowledged up to what was read
                expected = dict(zip(tasks, first, strict=True))
                await wait_until(
                    lambda: open_session(replica).connection.offsets() == expected,
                    timeout=10,
                    what="the client's pongs",
                )
            sent, restored = subscribes_sent(caplog), restores()
            assert sent == TASKS

            assert proxy.cut() >= 1
            second = await write_all(cluster, tasks, project_id, 2)
            got = await next_items(streams)
            assert [(i.task_id, i.offset) for i in got] == list(zip(tasks, second, strict=True))
            assert all(isinstance(i, Update) for i in got)

            assert client.tasks.connections == 2 and client.tasks.sessions_restored == 1
            assert restores() == restored + 1
            assert client.tasks.streams_restored == (TASKS if kept else 0)
            assert subscribes_sent(caplog) - sent == (0 if kept else TASKS)
            # Nothing repeated: the next item of each stream is the next update.
            third = await write_all(cluster, tasks, project_id, 3)
            got = await next_items(streams)
            assert [(i.task_id, i.offset) for i in got] == list(zip(tasks, third, strict=True))
    finally:
        proxy.stop()

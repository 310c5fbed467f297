"""Socket.IO on the real broker: a python-socketio client follows a live task on one gateway
replica, that replica stops, and the client recovers on ANOTHER replica (started after the
updates it missed, so they come from Kafka, not a cache) with its pid and last position
string: exactly the missed updates, then live ones; `recovered` is true."""

from __future__ import annotations

from typing import Any

import pytest
import socketio

from tests.support.gateway import make_update, stable_id
from tests.support.wait import wait_until

from .conftest import Cluster

pytestmark = pytest.mark.kafka

NS = "/progress"


class Follower:
    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.offsets: list[int] = []
        self.hello: list[dict[str, Any]] = []
        self.position: str | None = None

        @self.client.on("*", namespace=NS)  # type: ignore[misc]
        async def any_event(event: str, msg: dict[str, Any], *rest: Any) -> None:
            if event == "connected":
                self.hello.append(msg["payload"])
            elif event in ("progress", "status", "error") and msg["offset"] is not None:
                self.offsets.append(msg["offset"])
            if rest and isinstance(rest[-1], str):
                self.position = rest[-1]

    async def connect(self, base: str, auth: dict[str, Any]) -> None:
        await self.client.connect(
            base, namespaces=[NS], auth=auth, transports=["websocket"], wait_timeout=10
        )


async def test_recovery_on_another_replica_replays_from_kafka(cluster: Cluster) -> None:
    task_id = stable_id("sio-task")
    token = cluster.token()
    written = [await cluster.write(make_update(task_id, n=i)) for i in range(3)]
    first = await cluster.replica()
    follower = Follower()
    await follower.connect(first.server.base, {"token": token})
    await follower.client.call("join", {"task_id": task_id, "since": -1}, namespace=NS)
    written.append(await cluster.write(make_update(task_id, n=3)))
    await wait_until(lambda: follower.offsets == written, timeout=15, what="replay + live")
    pid, position = follower.hello[0]["pid"], follower.position
    await follower.client.disconnect()
    await first.stop()
    cluster.replicas.remove(first)

    missed = [await cluster.write(make_update(task_id, n=i)) for i in range(4, 7)]
    second = await cluster.replica()  # starts after the missed updates: they are read from Kafka
    back = Follower()
    await back.connect(second.server.base, {"token": token, "pid": pid, "offset": position})
    await wait_until(lambda: back.offsets == missed, timeout=15, what="exactly the missed ones")
    assert back.hello[0]["recovered"] is True and back.hello[0]["pid"] == pid
    live = await cluster.write(make_update(task_id, n=7))
    await wait_until(lambda: back.offsets == [*missed, live], timeout=15, what="live again")
    await back.client.disconnect()


async def test_recovery_of_more_than_the_queue_holds_replays_every_missed_update(
    cluster: Cluster,
) -> None:
    """A recovery longer than the client's queue is replayed page by page after the CONNECT,
    at the pace the client reads: every missed update once, in order, then live ones."""
    task_id = stable_id("sio-long-recovery")
    token = cluster.token()
    first_update = await cluster.write(make_update(task_id, n=0))
    replica = await cluster.replica(client_queue_size=100)
    follower = Follower()
    await follower.connect(replica.server.base, {"token": token})
    await follower.client.call("join", {"task_id": task_id, "since": -1}, namespace=NS)
    await wait_until(lambda: follower.offsets == [first_update], timeout=15, what="the first")
    pid, position = follower.hello[0]["pid"], follower.position
    await follower.client.disconnect()

    missed = [await cluster.write(make_update(task_id, n=i)) for i in range(1, 601)]
    back = Follower()
    await back.connect(replica.server.base, {"token": token, "pid": pid, "offset": position})
    try:
        await wait_until(lambda: len(back.offsets) >= len(missed), timeout=30, what="the replay")
    except AssertionError as exc:  # timed out once in CI (1 December): say where it stood
        got = back.offsets
        raise AssertionError(
            f"{exc}: {len(got)} of {len(missed)} updates, the last {got[-3:]}, "
            f"connected {back.client.connected}, hello {back.hello}"
        ) from None
    assert back.hello[0]["recovered"] is True and back.hello[0]["pid"] == pid
    live = await cluster.write(make_update(task_id, n=601))
    await wait_until(lambda: back.offsets[-1:] == [live], timeout=15, what="live again")
    assert back.offsets == [*missed, live]
    await back.client.disconnect()

"""The gateway's fan-out and replay on the real broker:

- subscribe with `since` at every possible offset of a finished task gives exactly the rest of
  its history (read back from Kafka, not from a cache);
- disconnects at random moments during a live run, each followed by a resume, give exactly
  the log; so do two replicas, behind no balancer, serving the same client alternately;
- an offset the log does not hold gives `recovered: false` and a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection, connect

from tests.support.gateway import make_update
from ytmaker_gateway import metrics
from ytmaker_shared.events import new_event_id
from ytmaker_shared.progress import TaskStatus
from ytmaker_shared.topics import Topic

from .conftest import Cluster

pytestmark = pytest.mark.kafka

UPDATE_TYPES = {"progress", "status", "error"}


async def _recv(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def _open(url: str, token: str, **query: str) -> tuple[ClientConnection, dict[str, Any]]:
    params = "&".join(f"{k}={v}" for k, v in ({"token": token} | query).items())
    ws = await connect(f"{url}/api/v1/ws?{params}")
    return ws, await _recv(ws)


async def _subscribe_exactly(
    ws: ClientConnection, task_id: str, since: int | None
) -> tuple[dict[str, Any], list[int]]:
    """Subscribe afresh (unsubscribed first: a second subscribe on one connection continues
    after what it already sent), then ping: everything the subscription replays is queued
    before the pong, so the offsets between `subscribed` and `pong` are exactly what was
    replayed."""
    await ws.send(json.dumps({"action": "unsubscribe", "task_id": task_id}))
    await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": since}))
    await ws.send(json.dumps({"type": "ping"}))
    subscribed: dict[str, Any] = {}
    offsets: list[int] = []
    while True:
        message = await _recv(ws)
        if message["type"] == "pong":
            return subscribed, offsets
        if message["type"] == "subscribed":
            subscribed = message
        elif message["type"] in UPDATE_TYPES and message["task_id"] == task_id:
            offsets.append(message["offset"])


async def _write_run(
    cluster: Cluster, task_id: str, n: int, *, noise: int = 0, pace_s: float = 0.0
) -> None:
    """A run of `n` updates ending completed, interleaved with `noise` updates of other tasks."""
    for i in range(n):
        last = i == n - 1
        await cluster.write(
            make_update(
                task_id,
                n=i,
                progress=100 * (i + 1) / n,
                status=TaskStatus.COMPLETED if last else TaskStatus.RUNNING,
            )
        )
        for j in range(noise):
            await cluster.write(make_update(f"{task_id}-noise-{j}", n=i, owner="bob"))
        if pace_s:
            await asyncio.sleep(pace_s)


async def test_since_at_every_offset_of_a_finished_task(cluster: Cluster) -> None:
    task_id = new_event_id()
    await _write_run(cluster, task_id, 12, noise=2)
    log = await cluster.log_of(task_id)
    assert len(log) == 12
    replica = await cluster.replica()  # started after the run: nothing is in its cache
    kafka_replays = metrics.REPLAYS.labels("kafka", "true")._value.get()
    ws, _ = await _open(replica.ws, cluster.token())
    for since in range(-1, log[-1] + 1):
        subscribed, offsets = await _subscribe_exactly(ws, task_id, since)
        assert subscribed["payload"]["recovered"] is True, since
        assert offsets == [o for o in log if o > since], since
    await ws.close()
    # Every replay with something to replay read Kafka; resuming after the task's last update
    # reads nothing (the read model says it was the last: decision 0040).
    assert metrics.REPLAYS.labels("kafka", "true")._value.get() - kafka_replays == log[-1] + 1


async def test_an_offset_the_log_does_not_hold_gives_a_snapshot(cluster: Cluster) -> None:
    task_id = new_event_id()
    await _write_run(cluster, task_id, 3)
    log = await cluster.log_of(task_id)
    replica = await cluster.replica()
    ws, _ = await _open(replica.ws, cluster.token())
    await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": 10_000}))
    subscribed, snapshot = await _recv(ws), await _recv(ws)
    assert subscribed["payload"]["recovered"] is False and subscribed["offset"] == log[-1]
    assert snapshot["type"] == "snapshot" and snapshot["payload"]["status"] == "completed"
    await ws.close()


async def _follow_with_random_disconnects(
    cluster: Cluster, task_id: str, urls: list[str], rng: random.Random
) -> tuple[list[int], int]:
    """Watch a live run, dropping the connection at random moments and resuming from the
    last offset seen, on `urls` in turn; returns the offsets seen and the reconnects made."""
    seen: list[int] = []
    reconnects = 0
    done = False
    client_id: str | None = None
    while not done:
        url = urls[reconnects % len(urls)]
        query = {"old_client_id": client_id} if client_id and rng.random() < 0.5 else {}
        ws, hello = await _open(url, cluster.token(), **query)
        client_id = hello["payload"]["client_id"]
        # Always send our own `since`: what the server wrote is not what we read.
        await ws.send(
            json.dumps(
                {"action": "subscribe", "task_id": task_id, "since": seen[-1] if seen else -1}
            )
        )
        budget = rng.randint(0, 6)
        answered = False  # updates before the answer to our subscribe are the restored stream's
        while not done and budget > 0:
            message = await _recv(ws, timeout=30)
            if message["type"] == "subscribed" and not message["payload"]["restored"]:
                answered = True
            elif answered and message["type"] in UPDATE_TYPES and message["task_id"] == task_id:
                assert not seen or message["offset"] > seen[-1], "a duplicate or out of order"
                seen.append(message["offset"])
                done = message["payload"]["status"] == "completed"
                budget -= 1
        if rng.random() < 0.5:
            await ws.close()
        else:
            ws.transport.abort()  # no close handshake: as if the network went away
        reconnects += 1
    return seen, reconnects


@pytest.mark.parametrize("replicas", [1, 2], ids=["one-gateway", "two-gateways-alternating"])
async def test_random_disconnects_during_a_live_run_lose_and_repeat_nothing(
    cluster: Cluster, replicas: int
) -> None:
    task_id = new_event_id()
    started = [await cluster.replica() for _ in range(replicas)]
    await cluster.write(make_update(task_id, n=-1, status=TaskStatus.QUEUED))
    writer = asyncio.create_task(_write_run(cluster, task_id, 60, noise=1, pace_s=0.02))
    seen, reconnects = await _follow_with_random_disconnects(
        cluster, task_id, [r.ws for r in started], random.Random(replicas)
    )
    await writer
    assert reconnects >= 5
    assert seen == await cluster.log_of(task_id)


class _Abort(Exception):
    pass


async def test_updates_reach_clients_before_the_folds_transaction_commits(
    cluster: Cluster,
) -> None:
    """The fold writes updates inside a long transaction that commits its checkpoints; the
    gateway reads them uncommitted, live and in replays, so an update reaches a client one
    produce after its event. An update whose transaction never commits (its fold died) stays
    an update: the next fold adopts it rather than folding its event again (decision 0038)."""
    task_id = new_event_id()
    first = await cluster.write(make_update(task_id, n=0))
    replica = await cluster.replica()  # starts after `first`: its replay is read from Kafka
    ws, _ = await _open(replica.ws, cluster.token())
    _, replayed = await _subscribe_exactly(ws, task_id, -1)
    assert replayed == [first]
    topic = cluster.settings.topics.name(Topic.PROGRESS_UPDATES)
    fold = AIOKafkaProducer(
        bootstrap_servers=cluster.settings.kafka_bootstrap_servers,
        transactional_id=f"it-fold-{cluster.settings.topic_prefix}",
    )
    await fold.start()
    key = task_id.encode()
    try:
        with contextlib.suppress(_Abort):
            async with fold.transaction():
                open_one = await fold.send_and_wait(
                    topic, make_update(task_id, n=1).model_dump_json().encode(), key=key
                )
                live: list[int] = []
                while open_one.offset not in live:  # delivered while the transaction is open
                    message = await _recv(ws)
                    if message["type"] in UPDATE_TYPES:
                        live.append(message["offset"])
                raise _Abort  # the fold dies: its transaction never commits
    finally:
        await fold.stop()
    assert live == [open_one.offset]
    _, replayed = await _subscribe_exactly(ws, task_id, -1)
    assert replayed == [first, open_one.offset]
    await ws.close()

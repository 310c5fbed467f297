"""The Python SDK against a real gateway's limits (docs/protocol.md "Errors and limits",
decision 0135): many subscriptions at once stay within the message rate; a subscription
past `max_subscriptions` ends with a clear error, asked once; a project with more runs than
the limit is followed whole; one run refused for good ends only that run's following. Each
check ends on a connection the gateway never closed (a 1008 would show as a second one)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.support.gateway import make_update, stable_id
from tests.support.wait import wait_until
from ytmaker_client import (
    ClientOptions,
    ProgressClient,
    Snapshot,
    SubscriptionError,
    TaskStatus,
    Update,
)
from ytmaker_gateway import metrics
from ytmaker_shared.events import new_event_id

from .conftest import Cluster

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

FAST = ClientOptions(
    backoff_base=0.05,
    backoff_cap=0.2,
    heartbeat_interval=1.0,
    heartbeat_timeout=10.0,
    refusal_window=0.5,
    retry_delay=0.05,
)


def refused(kind: str) -> float:
    return float(metrics.BAD_INPUT.labels(kind)._value.get())


async def _run(
    cluster: Cluster, task_id: str, project_id: str, status: TaskStatus, owner: str = "alice"
) -> None:
    await cluster.write(
        make_update(task_id, project_id=project_id, owner=owner, status=status, n=1)
    )


@pytest.mark.parametrize(
    ("rate", "count"), [(None, 60), (8, 20)], ids=["the default 50", "an operator's 8"]
)
async def test_many_subscriptions_at_once_keep_to_the_message_rate(
    cluster: Cluster, rate: int | None, count: int
) -> None:
    """The gateway takes `rate` messages a second in a burst of as many, and its greeting says
    how many. At the default 50, 60 subscribes at once were `rate_limited` past the 50th and
    closed with 1008 past the 55th, again at every resume (decision 0135); at an operator's 8,
    20 subscribes at the SDK's pace of then, 25 a second, the same (decision 0140)."""
    replica = await cluster.replica(**({} if rate is None else {"max_messages_per_second": rate}))
    project_id = stable_id(f"many-{count}")
    tasks = [new_event_id() for _ in range(count)]
    for task_id in tasks:
        await _run(cluster, task_id, project_id, TaskStatus.RUNNING)
    limited = refused("rate_limited")
    async with ProgressClient(replica.server.base, cluster.token(), options=FAST) as client:
        subs = [await client.subscribe_task(t, since=None) for t in tasks]
        firsts = await asyncio.wait_for(asyncio.gather(*(anext(aiter(s)) for s in subs)), 30)
        assert all(
            isinstance(f, Snapshot) and f.task_id == t for f, t in zip(firsts, tasks, strict=True)
        )
        assert client.tasks.connections == 1
    assert refused("rate_limited") == limited


async def test_a_subscription_past_the_limit_ends_with_a_clear_error_asked_once(
    cluster: Cluster,
) -> None:
    replica = await cluster.replica(max_subscriptions=3)
    project_id = stable_id("limit")
    tasks = [new_event_id() for _ in range(5)]
    for task_id in tasks:
        await _run(cluster, task_id, project_id, TaskStatus.RUNNING)
    before = refused("too_many_subscriptions")
    async with ProgressClient(replica.server.base, cluster.token(), options=FAST) as client:
        subs = [await client.subscribe_task(t, since=None) for t in tasks]
        for sub in subs[3:]:
            with pytest.raises(SubscriptionError) as error:
                await asyncio.wait_for(_all(sub), 10)
            assert error.value.code == "too_many_subscriptions"
            assert error.value.task_id == sub.task_id
        # The three held go on: a later update of each is delivered, on the first connection.
        for sub in subs[:3]:
            await _run(cluster, sub.task_id, project_id, TaskStatus.COMPLETED)
        items = await asyncio.wait_for(asyncio.gather(*(_all(s) for s in subs[:3])), 30)
        assert all(isinstance(i[-1], Update) and i[-1].terminal for i in items)
        assert client.tasks.connections == 1
    assert refused("too_many_subscriptions") - before == 2  # once each, never again


async def test_a_project_with_more_runs_than_the_limit_is_followed_whole(
    cluster: Cluster,
) -> None:
    """Twelve runs, three subscriptions a connection: finished runs are let go once their
    final state is delivered, the others wait for room, and the last two, still running,
    are followed to their end."""
    replica = await cluster.replica(max_subscriptions=3)
    project_id = stable_id(f"project-{new_event_id()}")
    runs = [new_event_id() for _ in range(12)]
    for task_id in runs[:10]:
        await _run(cluster, task_id, project_id, TaskStatus.COMPLETED)
    for task_id in runs[10:]:
        await _run(cluster, task_id, project_id, TaskStatus.RUNNING)
    async with ProgressClient(replica.server.base, cluster.token(), options=FAST) as client:
        project = await client.subscribe_project(project_id)
        finished: set[str] = set()
        seen: set[str] = set()

        async def follow() -> None:
            async for item in project:
                seen.add(item.task_id)
                if item.terminal:
                    finished.add(item.task_id)
                if seen == set(runs) and len(finished) == 10:
                    return

        await asyncio.wait_for(follow(), 30)
        assert finished == set(runs[:10])
        for task_id in runs[10:]:
            await _run(cluster, task_id, project_id, TaskStatus.COMPLETED)

        async def to_the_end() -> None:
            async for item in project:
                if item.terminal:
                    finished.add(item.task_id)
                if finished == set(runs):
                    return

        await asyncio.wait_for(to_the_end(), 30)
        assert project.tasks.connections == 1 and not project.finished
        await project.unsubscribe()


async def test_one_run_refused_for_good_ends_only_its_following(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    replica = await cluster.replica()
    project_id = stable_id(f"project-{new_event_id()}")
    theirs, mine = new_event_id(), new_event_id()
    await _run(cluster, theirs, project_id, TaskStatus.RUNNING, owner="bob")
    await _run(cluster, mine, project_id, TaskStatus.RUNNING)  # the project is alice's
    caplog.set_level(logging.WARNING, "ytmaker_client")
    async with ProgressClient(replica.server.base, cluster.token(), options=FAST) as client:
        project = await client.subscribe_project(project_id)
        project.follow(theirs, None)  # as if the project's stream had named it
        await wait_until(lambda: theirs in project.refused, timeout=10, what="the refusal")
        assert project.refused[theirs].code == "forbidden"
        assert any(theirs in r.getMessage() for r in caplog.records)
        await _run(cluster, mine, project_id, TaskStatus.COMPLETED)
        items = []
        async for item in project:
            items.append(item)
            if item.terminal:
                break
        assert {i.task_id for i in items} == {mine} and not project.finished
        await project.unsubscribe()


async def _all(sub: object) -> list[object]:
    return [item async for item in sub]  # type: ignore[attr-defined]

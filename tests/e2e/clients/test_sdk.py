"""The Python SDK against the running system (docs/sdk-python.md).

A run is started and followed through a TCP proxy that the test cuts, then freezes, mid-run:
the client reconnects by itself (the freeze is noticed by its heartbeat) and the updates it
delivered equal the stored history: the same offsets and events, once each, in order. A
project subscription follows the same run; the REST client reads it back, downloads its
artifacts, and refuses what it must with the API's error codes; the sync facade replays it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support.proxy import Proxy
from tests.support.wait import poll
from ytmaker_client import (
    ApiError,
    AuthenticationError,
    ClientOptions,
    ConnectionState,
    ProgressClient,
    RestClient,
    Snapshot,
    StateChange,
    SyncClient,
    TaskState,
    Update,
)

from .conftest import SAMPLE, SHORT, Running

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.timeout(420)]

FAST = ClientOptions(
    backoff_base=0.2, backoff_cap=2.0, heartbeat_interval=0.5, heartbeat_timeout=2.0
)
RUN_TIMEOUT = 300.0


async def stored_history(rest: RestClient, task_id: str, count: int) -> list[tuple[int, str]]:
    """The task's history from the read model once it holds `count` updates (it follows the
    log a moment behind)."""
    deadline = time.monotonic() + 30
    while True:
        items = (await rest.history(task_id, limit=10_000)).items
        if len(items) >= count or time.monotonic() > deadline:
            return [(i.offset, i.update.event_id) for i in items]
        await asyncio.sleep(0.2)


async def test_a_run_followed_across_cuts_equals_its_history(
    running: Running, tmp_path: Path
) -> None:
    token = running.token("alice")
    proxy = Proxy("127.0.0.1", running.gateway_port).start()
    changes: list[StateChange] = []
    try:
        async with RestClient(running.base, token) as rest:
            started = await rest.create_project("How tides work", SAMPLE, SHORT)
            client = ProgressClient(proxy.url, token, options=FAST)
            client.add_state_listener(changes.append)
            await client.connect()
            watcher = ProgressClient(running.base, token, options=FAST)
            await watcher.connect()
            project = await watcher.subscribe_project(started.project_id)
            subscription = await client.subscribe_task(started.task_id)

            seen: list[Update | Snapshot] = []
            progress_shown: list[float] = []

            frozen = False

            async def follow() -> None:
                nonlocal frozen
                async for item in subscription:
                    seen.append(item)
                    if isinstance(item, Update):
                        progress_shown.append(item.state.progress)
                    if len(seen) == 3:
                        assert proxy.cut() >= 1  # a dead link: the socket is reset
                    elif len(seen) > 3 and not frozen and client.tasks.connections >= 2:
                        # On the new connection: a silent link, only the heartbeat knows.
                        frozen = proxy.freeze() >= 1

            await asyncio.wait_for(follow(), RUN_TIMEOUT)
            assert frozen, "the run ended before the second connection was frozen"
            assert all(isinstance(i, Update) for i in seen)  # nothing was lost: no snapshot
            final = seen[-1]
            assert final.state.status == "completed", final.state
            assert final.state.progress == 100.0
            received = [(i.offset, i.event_id) for i in seen if isinstance(i, Update)]
            assert received == await stored_history(rest, started.task_id, len(received))
            assert progress_shown == sorted(progress_shown)  # never goes back (docs/protocol.md)

            states = [c.state for c in changes if c.channel == "tasks"]
            assert states.count(ConnectionState.RECONNECTING) >= 2
            assert client.tasks.connections >= 3 and proxy.accepted >= 3
            reasons = [c.reason for c in changes if c.state is ConnectionState.RECONNECTING]
            assert any("heartbeat" in r for r in reasons), reasons

            # The project's stream saw the same run: from a snapshot (it was listed when the
            # subscription started) or from its start, then every later update, in order.
            project_items: list[Update | Snapshot] = []

            async def drain() -> None:
                async for item in project:
                    project_items.append(item)
                    if isinstance(item, Update | Snapshot) and item.terminal:
                        return

            await asyncio.wait_for(drain(), 60)
            updates = [(i.offset, i.event_id) for i in project_items if isinstance(i, Update)]
            assert updates and updates == received[len(received) - len(updates) :]
            first = project_items[0]
            if isinstance(first, Snapshot):
                assert first.offset is not None and updates[0][0] > first.offset
                assert not first.missed
            await project.unsubscribe()
            await watcher.close()
            await client.close()
            assert states[-1] is not ConnectionState.RECONNECTING

            await _rest_reads_the_run(rest, running, started.task_id, started.project_id, tmp_path)
    finally:
        proxy.stop()


async def _rest_reads_the_run(
    rest: RestClient, running: Running, task_id: str, project_id: str, tmp_path: Path
) -> None:
    state = await rest.task(task_id)
    assert isinstance(state, TaskState) and state.status == "completed"
    view = await rest.project(project_id)
    assert view.project.title == "How tides work" and view.tasks[0].task_id == task_id
    assert view.project.settings.segments == 2
    recent = await rest.history(task_id, source="memory", limit=5)
    full = await rest.history(task_id)
    assert recent.source == "memory" and full.source == "database"
    assert [i.offset for i in recent.items] == [i.offset for i in full.items][:5]
    assert (await rest.stats()).completed_tasks >= 1

    with pytest.raises(ApiError) as refused:
        await rest.cancel(task_id)
    assert refused.value.code == "conflict" and refused.value.status == 409
    assert "already completed" in refused.value.message

    async with RestClient(running.base, running.token("bob")) as bob:
        with pytest.raises(ApiError) as forbidden:
            await bob.task(task_id)
        assert forbidden.value.code == "forbidden"
    async with RestClient(running.base, "not-a-token") as nobody:
        with pytest.raises(ApiError) as unauthorized:
            await nobody.stats()
        assert unauthorized.value.code == "unauthorized" and unauthorized.value.status == 401
    with pytest.raises(ApiError) as invalid:
        await rest.create_project("  ", "text")
    assert invalid.value.code == "invalid_request" and invalid.value.details.get("errors")

    seen: dict[str, list[tuple[int, int | None]]] = {}
    for name in ("video", "thumbnail", "script"):
        marks = seen.setdefault(name, [])
        path = await rest.download(
            task_id,
            name,
            tmp_path,
            on_progress=lambda d, t, m=marks: m.append((d, t)),  # type: ignore[misc]
        )
        data = path.read_bytes()
        assert data and marks[-1][0] == len(data)
        if marks[-1][1] is not None:
            assert marks[-1][1] == len(data)
        if name == "video":
            assert data[4:8] == b"ftyp" and path.suffix == ".mp4"
        if name == "thumbnail":
            assert data[:3] == b"\xff\xd8\xff"
    assert not list(tmp_path.glob("*.part"))  # noqa: ASYNC240 - a check after the fact

    # An offset the log never held: the gateway says so, and so does the client.
    async with ProgressClient(running.base, running.token("alice"), options=FAST) as client:
        items = [i async for i in await client.subscribe_task(task_id, since=10**9)]
    assert len(items) == 1 and isinstance(items[0], Snapshot), items
    assert items[0].missed and items[0].recovered is False and items[0].requested_since == 10**9
    assert items[0].state is not None and items[0].state.status == "completed"

    bad = ProgressClient(running.base, "forged.token.value", options=FAST)
    with pytest.raises(AuthenticationError):
        await bad.connect()
    await bad.close()


def test_the_sync_facade(running: Running, finished: tuple[str, str]) -> None:
    token = running.token("dev")  # the owner of the shared run (created anonymously)
    with SyncClient(running.base, token, options=FAST) as yt:
        task_id = finished[0]
        replayed = list(yt.updates(task_id))  # the whole run again, from the log
        history = yt.history(task_id).items
        assert [u.offset for u in replayed if isinstance(u, Update)] == [i.offset for i in history]
        assert yt.wait(task_id).status == "completed"
        assert yt.task(task_id).progress == 100.0
        link = yt.artifact_link(task_id, "thumbnail")
        assert link.expires_at > datetime.now(UTC)
        thumbnail = httpx.get(link.url)  # no token: the link's grant
        assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"
        with pytest.raises(ApiError) as conflict:
            yt.pause(task_id)
        assert conflict.value.code == "conflict"

        started = yt.create_project("Tide tables", SAMPLE, {"segments": 1})
        assert yt.cancel(started.task_id, "a test").accepted
        assert yt.wait(started.task_id).status == "cancelled"
        # the stream saw the cancel; the read model (REST) follows the log a moment later
        poll(
            lambda: [t.task_id for t in yt.project(started.project_id).tasks] == [started.task_id],
            timeout=10,
            what="the project's run in the read model",
        )

        mine = yt.runs(project_id=finished[1])  # GET /api/v1/runs (other tests run it again)
        assert task_id in {r.task_id for r in mine} and {r.project_id for r in mine} == {
            finished[1]
        }
        completed = yt.runs(project_id=finished[1], status="completed")
        assert task_id in {r.task_id for r in completed}
        assert {r.status for r in completed} == {"completed"}
        failed = yt.runs(project_id=finished[1], status="failed")
        assert task_id not in {r.task_id for r in failed}
        assert task_id in {r.task_id for r in yt.runs(limit=1000)}

        def cleared() -> bool:
            """A run's history can go once the read model has its end (`conflict` before)."""
            try:
                yt.delete_history(started.task_id)
            except ApiError as refused:
                if refused.code != "conflict":
                    raise
                return False
            return True

        poll(cleared, timeout=10, what="the cancelled run's history deleted")
        assert yt.history(started.task_id).items == []
        with pytest.raises(ApiError) as not_operator:
            yt.websocket_stats()
        assert not_operator.value.status == 403
    with SyncClient(running.base, running.token("bob"), options=FAST) as bob:
        assert task_id not in {r.task_id for r in bob.runs(limit=1000, all_users=True)}
    with SyncClient(running.base, running.token("ops", "operator"), options=FAST) as ops:
        ops.wait_ready(timeout=10)
        assert ops.ready()
        assert ops.active().instance == ops.websocket_stats().instance
    assert httpx.get(running.base + "/healthz").status_code == 200

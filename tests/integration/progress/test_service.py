"""The progress service end to end on the real broker and a real database (SQLite and
PostgreSQL): fold → `progress.updates` → read model → internal API (services/progress/API.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.internal import internal_headers
from tests.support.wait import wait_until
from ytmaker_dev.scenario import run_events
from ytmaker_progress.api import create_app
from ytmaker_progress.main import ProgressService
from ytmaker_progress.readmodel.memory import RecentHistory
from ytmaker_progress.readmodel.rows import Rows, add_update
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import encode
from ytmaker_shared.kafka import DeadLetter, EventProducer
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic, task_partition

from .conftest import publish, read_topic, read_updates

pytestmark = [pytest.mark.kafka]


@pytest.fixture
async def service(
    settings: ProgressSettings, database_url: str
) -> AsyncIterator[tuple[ProgressService, httpx.AsyncClient]]:
    s = settings.model_copy(update={"progress_database_url": database_url})
    svc = ProgressService(s)
    stopping = asyncio.Event()
    running = asyncio.create_task(svc.run(stopping))
    await wait_until(lambda: svc.http_port is not None or running.done(), timeout=60)
    if running.done():
        running.result()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{svc.http_port}", headers=internal_headers()
    ) as client:
        yield svc, client
    stopping.set()
    await running


async def poll_json(client: httpx.AsyncClient, path: str, check: Any, timeout: float = 60) -> Any:
    """GET `path` until `check(json)` holds; return the JSON."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await client.get(path)
        if response.status_code == 200 and check(response.json()):
            return response.json()
        if loop.time() > deadline:
            raise AssertionError(f"{path}: {response.status_code} {response.text[:500]}")
        await asyncio.sleep(0.1)


async def test_runs_are_folded_stored_and_served(
    service: tuple[ProgressService, httpx.AsyncClient],
    publisher: EventProducer,
    settings: ProgressSettings,
) -> None:
    _, client = service
    done = run_events("t-done", project_id="p-1", retry_stage=Stage.IMAGES, pause=True)
    failed = run_events("t-failed", project_id="p-1", ending="failed", owner="alice")
    cancelled = run_events("t-cancel", owner="bob", ending="cancelled")
    running = run_events("t-running", owner="bob")[:8]
    for events in (done, failed, cancelled, running):
        await publish(publisher, events)
    # a malformed record goes to the DLQ and blocks nothing
    await publisher.send_raw(settings.topics.name(Topic.SCRIPT), key=b"t-done", value=b"{oops")
    # so does an event of a task in another partition than the task's (decision 0123)
    partitions = settings.topic_partitions
    topic, event = running[3]
    elsewhere = (task_partition("t-running", partitions) + 1) % partitions
    hostile: Any = await publisher.kafka.send_and_wait(
        settings.topics.name(topic),
        value=encode(event.model_copy(update={"event_id": "hostile-1"})),
        key=b"t-running",
        partition=elsewhere,
    )

    # the current state of each task
    state = await poll_json(
        client, "/internal/v1/tasks/t-done", lambda s: s["status"] == "completed"
    )
    assert state["progress"] == 100
    assert state["stages"]["images"]["attempt"] == 2
    assert state["epoch"] and state["offset"] is not None
    await poll_json(client, "/internal/v1/tasks/t-failed", lambda s: s["status"] == "failed")
    await poll_json(client, "/internal/v1/tasks/t-cancel", lambda s: s["status"] == "cancelled")
    live = await poll_json(
        client,
        "/internal/v1/tasks/t-running",
        lambda s: (
            s["stages"].get("audio", {}).get("progress") == 25
            and s["stages"]["script"]["status"] == "completed"
        ),
    )
    assert live["status"] == "running"
    assert (await client.get("/internal/v1/tasks/nope")).json()["error"]["code"] == "not_found"

    # the log: every task's updates, in order, once each, and the API serves exactly them
    records = await read_updates(settings)
    by_task: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for _, offset, update in records:
        by_task.setdefault(update["task_id"], []).append((offset, update))
    assert {
        (partition, update["task_id"])
        for partition, _, update in records
        if partition != task_partition(update["task_id"], partitions)
    } == set()
    assert "hostile-1" not in {update["event_id"] for _, _, update in records}
    for task_id, items in by_task.items():
        event_ids = [u["event_id"] for _, u in items]
        assert len(event_ids) == len(set(event_ids)), task_id
        progress = [u["state"]["progress"] for _, u in items]
        assert progress == sorted(progress), task_id
    db = await poll_json(
        client,
        "/internal/v1/tasks/t-done/history?source=database&limit=1000",
        lambda h: len(h["items"]) == len(by_task["t-done"]),
    )
    assert [i["offset"] for i in db["items"]] == [o for o, _ in by_task["t-done"]]
    assert [i["update"]["event_id"] for i in db["items"]] == [
        u["event_id"] for _, u in by_task["t-done"]
    ]
    memory = (await client.get("/internal/v1/tasks/t-done/history")).json()
    assert memory["source"] == "memory"
    assert memory["items"] == db["items"][-100:]
    third = db["items"][2]["offset"]
    since = (await client.get(f"/internal/v1/tasks/t-done/history?since={third}&limit=2")).json()
    assert [i["offset"] for i in since["items"]] == [i["offset"] for i in db["items"][3:5]]

    # replay after an offset; an offset of another epoch is not held
    replay = (await client.get(f"/internal/v1/tasks/t-done/updates?after={third}")).json()
    assert replay["recovered"] is True and replay["snapshot"] is None
    assert [i["offset"] for i in replay["items"]] == [i["offset"] for i in db["items"][3:]]
    assert replay["epoch"] == state["epoch"]
    other = (
        await client.get(f"/internal/v1/tasks/t-done/updates?after={third}&epoch=elsewhere")
    ).json()
    assert other["recovered"] is False and other["snapshot"]["status"] == "completed"

    # a project with its tasks, newest first
    project = (await client.get("/internal/v1/projects/p-1")).json()
    assert project["project"]["title"] == "Video t-done"
    assert project["project"]["content"]
    assert {t["task_id"] for t in project["tasks"]} == {"t-done", "t-failed"}
    assert (await client.get("/internal/v1/projects/none")).status_code == 404
    listed = (await client.get("/internal/v1/tasks?owner=bob")).json()["items"]
    assert {t["task_id"] for t in listed} == {"t-cancel", "t-running"}
    running_only = (await client.get("/internal/v1/tasks?status=running")).json()["items"]
    assert [t["task_id"] for t in running_only] == ["t-running"]

    # stats
    stats = (await client.get("/internal/v1/stats")).json()
    assert stats["total_tasks"] == 4
    assert (stats["completed_tasks"], stats["failed_tasks"], stats["cancelled_tasks"]) == (1, 1, 1)
    assert stats["active_tasks"] == 1
    assert stats["stages"]["images"]["failure_rate"] > 0
    assert stats["stages"]["script"]["avg_duration_s"] > 0
    assert (await client.get("/internal/v1/stats?owner=bob")).json()["total_tasks"] == 2

    # deleting history: refused while running, done when finished, replay then says so
    refused = await client.delete("/internal/v1/tasks/t-running/history")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    assert (await client.delete("/internal/v1/tasks/t-done/history")).status_code == 204
    for source in ("memory", "database"):
        gone = await client.get(f"/internal/v1/tasks/t-done/history?source={source}")
        assert gone.json()["items"] == []
    lost = (await client.get(f"/internal/v1/tasks/t-done/updates?after={third}")).json()
    assert lost["recovered"] is False and lost["snapshot"]["status"] == "completed"

    # bad input is answered
    bad = await client.get("/internal/v1/tasks?limit=0")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"

    # the malformed record reached the DLQ, and the event in another partition than its task's
    dlq = await _dead_letters(settings, until=2)
    assert any(d.reason == "invalid_json" and d.value == b"{oops" for d in dlq)
    [wrong] = [d for d in dlq if d.reason == "wrong_partition"]
    assert (wrong.partition, wrong.offset) == (elsewhere, hostile.offset)

    # health
    assert (await client.get("/readyz")).status_code == 200
    assert b"ytmaker_progress_events_folded_total" in (await client.get("/metrics")).content


async def test_sessions_are_upserted_and_listed(
    service: tuple[ProgressService, httpx.AsyncClient],
) -> None:
    _, client = service
    now = datetime.now(UTC).isoformat()
    body = {"client_id": "c-1", "user": "alice", "connected_at": now, "subscriptions": ["t-1"]}
    first = await client.post("/internal/v1/sessions", json=body)
    assert first.status_code == 200, first.text
    await client.post(
        "/internal/v1/sessions",
        json={"client_id": "c-2", "user": "bob", "connected_at": now, "disconnected_at": now},
    )
    again = await client.post("/internal/v1/sessions", json=body | {"message_count": 7})
    assert again.json()["message_count"] == 7
    active = (await client.get("/internal/v1/sessions?active=true")).json()["items"]
    assert [(s["client_id"], s["subscriptions"]) for s in active] == [("c-1", ["t-1"])]
    everyone = (await client.get("/internal/v1/sessions")).json()["items"]
    assert {s["client_id"] for s in everyone} == {"c-1", "c-2"}
    bad = await client.post("/internal/v1/sessions", json={"client_id": "c-3"})
    assert bad.status_code == 422


async def test_a_batch_of_sessions_is_stored_in_one_request(
    service: tuple[ProgressService, httpx.AsyncClient],
) -> None:
    """A gateway's checkpoint: new and known sessions together, with their offsets; records
    of different shapes (one disconnected) in the same batch."""
    _, client = service
    now = datetime.now(UTC).isoformat()
    known = {"client_id": "b-0", "user": "alice", "connected_at": now, "subscriptions": ["t-0"]}
    assert (await client.post("/internal/v1/sessions", json=known)).status_code == 200
    items = [
        {
            "client_id": f"b-{n}",
            "user": "alice",
            "connected_at": now,
            "message_count": n,
            "subscriptions": [f"t-{n}"],
            "offsets": {f"t-{n}": 100 + n},
        }
        for n in range(250)
    ]
    items[7] |= {"disconnected_at": now}
    stored = await client.post("/internal/v1/sessions/batch", json={"items": items})
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"stored": 250}
    found = {
        s["client_id"]: s
        for s in (await client.get("/internal/v1/sessions?user=alice")).json()["items"]
    }
    assert len(found) == 250
    for n in (0, 7, 249):
        record = found[f"b-{n}"]
        assert record["message_count"] == n
        assert record["subscriptions"] == [f"t-{n}"] and record["offsets"] == {f"t-{n}": 100 + n}
    assert found["b-7"]["disconnected_at"] is not None and found["b-8"]["disconnected_at"] is None
    bad = await client.post("/internal/v1/sessions/batch", json={"items": [{"client_id": "x"}]})
    assert bad.status_code == 422


async def _dead_letters(settings: ProgressSettings, until: int | None = None) -> list[DeadLetter]:
    records = await read_topic(settings, Topic.DLQ, until=until)
    return [DeadLetter.from_record(r) for r in records]


@pytest.fixture
async def api_only(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The internal API over a real database, without the broker: a task `t-1` of alice."""
    store = Store(database_url)
    state = {"task_id": "t-1", "project_id": "p", "owner": "alice", "status": "running"}
    update = {
        "task_id": "t-1",
        "occurred_at": "2026-12-01T10:00:00Z",
        "state": state | {"progress": 1.0, "stages": {}},
    }
    rows = Rows()
    add_update(rows, 0, "e", json.dumps(update).encode())
    store.write(rows, {})
    app = create_app(store, RecentHistory(), token=TOKEN, epoch=lambda: "e", ready=lambda: True)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://progress",
            headers={"authorization": f"Bearer {TOKEN}"},
        ) as client:
            yield client
    finally:
        store.close()


TOKEN = "internal-test-credential-0123456789"
NUL = "%00"
NUL_REQUESTS = [
    ("GET", f"/internal/v1/tasks/t-1{NUL}", None),
    ("GET", f"/internal/v1/tasks/t{NUL}1/history?source=database", None),
    ("GET", f"/internal/v1/tasks/t{NUL}1/updates?after=0", None),
    ("DELETE", f"/internal/v1/tasks/t{NUL}1/history", None),
    ("GET", f"/internal/v1/projects/p{NUL}", None),
    ("GET", f"/internal/v1/tasks?owner=alice{NUL}", None),
    ("GET", f"/internal/v1/tasks?project_id=p{NUL}", None),
    ("GET", f"/internal/v1/tasks?status=running{NUL}", None),
    ("GET", f"/internal/v1/stats?owner=alice{NUL}", None),
    ("GET", f"/internal/v1/sessions?user=alice{NUL}", None),
    ("POST", "/internal/v1/tasks/lookup", {"task_ids": ["t-1", "t\x00"]}),
    ("POST", "/internal/v1/sessions", {"client_id": "c\x00", "user": "u", "connected_at": "now"}),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), NUL_REQUESTS, ids=[p for _, p, _ in NUL_REQUESTS]
)
async def test_a_nul_character_anywhere_in_a_request_gets_422_on_both_databases(
    api_only: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    """No id, owner or other text in the read model holds a NUL (`rows.checked_update`
    refuses it); PostgreSQL's driver refuses to send one, which answered 500."""
    answer = await api_only.request(method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"


async def test_a_sessions_text_with_a_nul_is_refused_and_the_others_still_listed(
    api_only: httpx.AsyncClient,
) -> None:
    now = "2026-12-01T10:00:00Z"
    session = {"client_id": "c-1", "user": "alice", "connected_at": now}
    for field in ("user", "address", "user_agent"):
        answer = await api_only.post("/internal/v1/sessions", json=session | {field: "a\x00b"})
        assert answer.status_code == 422, (field, answer.text)
        batch = await api_only.post(
            "/internal/v1/sessions/batch", json={"items": [session | {field: "\x00"}]}
        )
        assert batch.status_code == 422, (field, batch.text)
    assert (await api_only.post("/internal/v1/sessions", json=session)).status_code == 200
    listed = await api_only.get("/internal/v1/sessions")
    assert [s["client_id"] for s in listed.json()["items"]] == ["c-1"]


async def test_session_times_keep_their_instant_on_both_databases(
    api_only: httpx.AsyncClient,
) -> None:
    """RFC 3339 times with any offset are the same instant back (SQLite's column keeps the
    clock time alone); a time without an offset, or one beyond the years a reader can give
    back in UTC, is refused, and the sessions stay listable."""
    session = {"client_id": "c-1", "user": "alice"}
    answer = await api_only.post(
        "/internal/v1/sessions",
        json=session
        | {
            "connected_at": "2026-12-01T12:00:00+02:00",
            "last_active_at": "2026-12-01T05:00:00-05:00",
        },
    )
    assert answer.status_code == 200, answer.text
    [stored] = (await api_only.get("/internal/v1/sessions")).json()["items"]
    for key in ("connected_at", "last_active_at"):
        assert datetime.fromisoformat(stored[key]) == datetime(2026, 12, 1, 10, tzinfo=UTC), stored
    for bad in ("2026-12-01T10:00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        refused = await api_only.post(
            "/internal/v1/sessions", json=session | {"client_id": "c-2", "connected_at": bad}
        )
        assert refused.status_code == 422, (bad, refused.text)
    listed = await api_only.get("/internal/v1/sessions")
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1, listed.text


@pytest.mark.postgres
@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/Los_Angeles"])
def test_times_at_the_edge_of_the_years_read_back_whatever_the_servers_time_zone(
    postgres_url: str, zone: str
) -> None:
    """A server in another time zone gives times back in it: a UTC time in year 9999 (or
    year 1) would be year 10000 (or 0) there, which the driver cannot read, and every query
    of that row (the task lists, the stall watch) would fail."""
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            database = conn.execute(text("SELECT current_database()")).scalar()
            conn.execute(text(f"ALTER DATABASE \"{database}\" SET timezone TO '{zone}'"))
    finally:
        engine.dispose()
    store = Store(postgres_url)
    try:
        rows = Rows()
        for offset, at in enumerate(("9999-12-31T23:00:00Z", "0001-01-01T01:00:00Z")):
            state = {"task_id": f"t-{offset}", "project_id": "p", "owner": "alice"}
            state |= {"status": "running", "progress": 1.0, "stages": {}}
            update = {"task_id": f"t-{offset}", "occurred_at": at, "state": state}
            add_update(rows, offset, "e", json.dumps(update).encode())
        store.write(rows, {})
        assert {s["task_id"] for s in store.tasks(owner="alice")} == {"t-0", "t-1"}
        [silent] = store.silent_tasks(datetime(2026, 1, 1, tzinfo=UTC))
        assert silent["updated_at"] == "0001-01-01T01:00:00+00:00"
    finally:
        store.close()

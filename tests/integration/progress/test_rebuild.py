"""Replaying the topics from the beginning rebuilds a read model equal to the live one
(DESIGN §1, §6), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from tests.support.wait import wait_until
from ytmaker_dev.scenario import run_events
from ytmaker_progress.main import ProgressService
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.rebuild import NotEmpty, differences, rebuild
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic

from .conftest import publish

pytestmark = [pytest.mark.kafka]


async def test_rebuild_equals_the_live_read_model(
    settings: ProgressSettings,
    publisher: EventProducer,
    database_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    live_settings = settings.model_copy(update={"progress_database_url": database_url})
    service = ProgressService(live_settings)
    stopping = asyncio.Event()
    running = asyncio.create_task(service.run(stopping))
    kinds = [{}, {"ending": "failed"}, {"ending": "cancelled"}, {"retry_stage": Stage.AUDIO}]
    runs = [run_events(f"r-{i}", project_id=f"p-{i % 3}", **kinds[i % 4]) for i in range(12)]
    total = sum([await publish(publisher, run) for run in runs])
    assert total > 300
    await wait_until(lambda: service.store is not None, timeout=30)
    store = service.store
    assert store is not None

    def finished() -> int:
        with store.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM tasks WHERE status IN "
                        "('completed', 'failed', 'cancelled')"
                    )
                ).scalar_one()
            )

    await wait_until(lambda: finished() == 12, timeout=90, what="every run stored as finished")
    await wait_until(lambda: service.ready(), timeout=30)
    assert await asyncio.to_thread(store.delete_history, "r-0")  # a deliberate deletion
    stopping.set()
    await running

    if database_url.startswith("postgresql"):
        server = request.getfixturevalue("postgres_server")
        target = server.url(server.create_database())
    else:
        target = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    rebuilt, stored, _ = await rebuild(settings, target)
    live = Store(database_url)
    try:
        assert stored > 0
        assert differences(live, rebuilt) == []
        # a rebuild defers the history's secondary indexes, then creates them
        indexes = [
            sorted(ix["name"] for ix in inspect(store.engine).get_indexes("progress_history"))
            for store in (live, rebuilt)
        ]
        assert indexes[0] == indexes[1] and "ix_history_created_at" in indexes[0]
        assert len(live.dump()["history"]) < len(rebuilt.dump()["history"])  # r-0 came back
    finally:
        live.close()
        rebuilt.close()
    with pytest.raises(NotEmpty):
        await rebuild(settings, target)


def _update(name: str, **state: Any) -> dict[str, Any]:
    base = {"task_id": name, "project_id": "p", "owner": "alice", "status": "running"}
    return {
        "type": "progress",
        "task_id": name,
        "event_id": "e",
        "occurred_at": "2026-12-01T10:00:00Z",
        "state": base | {"progress": 50.0, "stages": {}} | state,
    }


_FINISHED_SCRIPT = {"status": "completed", "started_at": "2026-12-01T09:59:00Z"}
_FINISHED_SCRIPT |= {"finished_at": "2026-12-01T10:00:00+01:00"}
#: Updates an outsider could write to progress.updates, each with what a read model keeps of it
#: (None: refused, skipped and counted): a crash on one stopped the sink (and a rebuild) for
#: good, as it is read again on every start.
HOSTILE: list[tuple[dict[str, Any], str | None]] = [
    (_update("t-no-attempt", stages={"script": _FINISHED_SCRIPT | {"attempt": None}}), "stored"),
    (_update("t-offset", updated_at="2026-12-01T12:00:00+02:00"), "stored"),
    (_update("t-no-time", updated_at=None, created_at=""), "stored"),
    (_update("t-naive", stages={"script": _FINISHED_SCRIPT | {"started_at": "2026-12-01"}}), None),
    (_update("t-naive-updated", updated_at="2026-12-01T10:00:00"), None),
    (_update("t-year-0", created_at="0001-01-01T00:00:00+01:00"), None),
    (_update("t-year-10000", updated_at="9999-12-31T23:59:59-01:00"), None),
    (_update("t-someone", task_id="t-victim"), None),
    (_update("t-cause", last_event_id={"id": 1}), None),
]


async def test_hostile_updates_are_rebuilt_like_the_live_read_model_stored_them(
    settings: ProgressSettings,
    publisher: EventProducer,
    database_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    topic = settings.topics.name(Topic.PROGRESS_UPDATES)
    for update, _ in HOSTILE:
        value = json.dumps(update).encode()
        await publisher.send_raw(topic, key=update["task_id"].encode(), value=value)
    stored = {u["task_id"] for u, kept in HOSTILE if kept}

    def target(name: str) -> str:
        if database_url.startswith("postgresql"):
            server = request.getfixturevalue("postgres_server")
            return str(server.url(server.create_database()))
        return f"sqlite:///{tmp_path / name}.db"

    first, count, _ = await rebuild(settings, target("first"))
    second, _, _ = await rebuild(settings, target("second"))
    try:
        assert count == len(stored)
        assert {s["task_id"] for s in first.tasks(limit=100)} == stored
        assert differences(first, second) == []
        runs = first.dump()["stage_runs"]
        assert [(r[0], r[1], r[2]) for r in runs] == [("t-no-attempt", "script", 0)]
        ten = datetime(2026, 12, 1, 10, tzinfo=UTC)
        silent = {s["task_id"]: s for s in first.silent_tasks(ten + timedelta(seconds=1))}
        assert set(silent) == stored  # each last updated at 10:00 UTC
        assert all(datetime.fromisoformat(s["updated_at"]) == ten for s in silent.values())
    finally:
        first.close()
        second.close()

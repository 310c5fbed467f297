"""Replaying the topics from the beginning rebuilds a read model equal to the live one
(DESIGN §1, §6), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

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

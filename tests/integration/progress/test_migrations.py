"""The read model's migrations on real SQLite and PostgreSQL: a database made by an earlier
version is brought to the current schema, once, and a new one starts there."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, insert, inspect, text

from ytmaker_progress.readmodel import migrations
from ytmaker_progress.readmodel.store import _T, Store


def _history_indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {ix["name"] for ix in inspect(engine).get_indexes("progress_history")}
    finally:
        engine.dispose()


def test_a_new_read_model_has_every_migration_and_no_index_on_history_status(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        assert migrations.upgrade(engine) == [v for v, _, _ in migrations.MIGRATIONS]
        assert migrations.upgrade(engine) == []  # once
        assert migrations.current_version(engine) == migrations.MIGRATIONS[-1][0]
    finally:
        engine.dispose()
    indexes = _history_indexes(database_url)
    assert "ix_history_created_at" in indexes
    assert "ix_progress_history_status" not in indexes


def test_a_read_model_of_version_1_loses_the_index_on_history_status(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        migrations.upgrade(engine)
        with engine.begin() as conn:  # what version 1 made before the index was dropped
            conn.execute(
                text("CREATE INDEX ix_progress_history_status ON progress_history (status)")
            )
            conn.execute(text("DELETE FROM schema_migrations WHERE version > 1"))
        assert "ix_progress_history_status" in _history_indexes(database_url)

        assert migrations.upgrade(engine) == [v for v, _, _ in migrations.MIGRATIONS[1:]]
    finally:
        engine.dispose()
    assert "ix_progress_history_status" not in _history_indexes(database_url)


def test_a_read_model_of_version_2_gets_a_stored_time_for_every_task(database_url: str) -> None:
    """A task of an older read model whose latest update is dated in the future (stored before
    the read model kept when it stored each update) becomes visible to the stall watch: its
    silence counts from the migration."""
    engine = create_engine(database_url)
    ahead = datetime.now(UTC) + timedelta(days=365)
    try:
        migrations.upgrade(engine)
        with engine.begin() as conn:  # what version 2 made: no `stored_at`
            conn.execute(text("ALTER TABLE tasks DROP COLUMN stored_at"))
            conn.execute(text("DELETE FROM schema_migrations WHERE version > 2"))
            state = {"task_id": "t-ahead", "project_id": "p", "owner": "alice"}
            state |= {"status": "running", "progress": 1.0, "stages": {}}
            row = {"task_id": "t-ahead", "project_id": "p", "owner": "alice"}
            row |= {"status": "running", "progress": 1.0, "created_at": ahead}
            row |= {"updated_at": ahead, "last_offset": 0, "epoch": "e"}
            conn.execute(insert(_T), [row | {"state": json.dumps(state), "history_floor": -1}])
        migrated = datetime.now(UTC)
        assert migrations.upgrade(engine) == [v for v, _, _ in migrations.MIGRATIONS[2:]]
    finally:
        engine.dispose()
    store = Store(database_url)
    try:
        [silent] = store.silent_tasks(datetime.now(UTC) + timedelta(hours=1))
        assert migrated <= datetime.fromisoformat(silent["silent_since"]) <= datetime.now(UTC)
        assert datetime.fromisoformat(silent["updated_at"]) == ahead
    finally:
        store.close()

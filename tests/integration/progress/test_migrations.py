"""The read model's migrations on real SQLite and PostgreSQL: a database made by an earlier
version is brought to the current schema, once, and a new one starts there."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from ytmaker_progress.readmodel import migrations


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

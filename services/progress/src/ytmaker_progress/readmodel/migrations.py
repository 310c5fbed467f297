"""Schema migrations of the read model, for SQLite and PostgreSQL alike
(docs/decisions/0022-progress-read-model.md).

Each migration is a numbered function run once, in order, in its own transaction; the
`schema_migrations` table records what ran. `upgrade(engine)` is called at start-up by every
process (concurrent starts are safe on PostgreSQL: an advisory lock serialises them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, inspect, text, update
from sqlmodel import SQLModel

from ytmaker_progress.readmodel import tables

Migration = Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    SQLModel.metadata.create_all(
        conn,
        tables=[
            tables.ProjectRow.__table__,  # type: ignore[attr-defined]
            tables.TaskRow.__table__,  # type: ignore[attr-defined]
            tables.HistoryRow.__table__,  # type: ignore[attr-defined]
            tables.StageRunRow.__table__,  # type: ignore[attr-defined]
            tables.SessionRow.__table__,  # type: ignore[attr-defined]
            tables.SinkPosition.__table__,  # type: ignore[attr-defined]
        ],
    )


def _v2_no_history_status_index(conn: Connection) -> None:
    """No query selects history by status, yet every stored update kept the index up to date
    (docs/decisions/0104-no-index-on-history-status.md)."""
    conn.execute(text("DROP INDEX IF EXISTS ix_progress_history_status"))


def _v3_tasks_stored_at(conn: Connection) -> None:
    """When the read model stored each task's latest update (`tasks.stored_at`): an update
    dated in the future no longer keeps its task from the stall watch. A task stored before
    counts as stored now. A database made by version 1 of this code has the column already
    (`_v1_initial` creates the tables as they are now)."""
    table = tables.TaskRow.__table__  # type: ignore[attr-defined]
    if "stored_at" not in {c["name"] for c in inspect(conn).get_columns("tasks")}:
        kind = table.c.stored_at.type.compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE tasks ADD COLUMN stored_at {kind}"))
    conn.execute(
        update(table).where(table.c.stored_at.is_(None)).values(stored_at=datetime.now(UTC))
    )


MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "initial tables", _v1_initial),
    (2, "drop the index on progress_history.status", _v2_no_history_status_index),
    (3, "tasks.stored_at: when the read model stored the latest update", _v3_tasks_stored_at),
]

_LOCK_ID = 0x79746D6B  # "ytmk"


def upgrade(engine: Engine) -> list[int]:
    """Apply the migrations not applied yet; return their numbers."""
    applied: list[int] = []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, description VARCHAR(200) NOT NULL)"
            )
        )
        done = {row[0] for row in conn.execute(text("SELECT version FROM schema_migrations"))}
        for version, description, migrate in MIGRATIONS:
            if version in done:
                continue
            migrate(conn)
            conn.execute(
                text("INSERT INTO schema_migrations (version, description) VALUES (:v, :d)"),
                {"v": version, "d": description},
            )
            applied.append(version)
    return applied


def current_version(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT max(version) FROM schema_migrations")).scalar() or 0)

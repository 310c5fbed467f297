"""Schema migrations of the read model, for SQLite and PostgreSQL alike
(docs/decisions/0022-progress-read-model.md).

Each migration is a numbered function run once, in order, in its own transaction; the
`schema_migrations` table records what ran. `upgrade(engine)` is called at start-up by every
process (concurrent starts are safe on PostgreSQL: an advisory lock serialises them).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, text
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


MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "initial tables", _v1_initial),
    (2, "drop the index on progress_history.status", _v2_no_history_status_index),
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

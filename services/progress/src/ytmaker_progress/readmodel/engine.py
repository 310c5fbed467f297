"""The read model's database connection: engines for SQLite (WAL) and PostgreSQL, and the
SQLite fast path for history rows, most of what the sink writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.pool import StaticPool

from ytmaker_progress.readmodel.tables import HistoryRow

_H = HistoryRow.__table__  # type: ignore[attr-defined]


def make_engine(url: str, *, bulk: bool = False) -> Engine:
    """An engine for `url`; SQLite files get WAL and a busy timeout.

    `bulk` is for filling a fresh database that can be thrown away if the process dies (a
    rebuild): SQLite then skips fsync and keeps a large page cache. Open the database again
    without `bulk` to serve it."""
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            if bulk:
                cursor.execute("PRAGMA synchronous=OFF")
                cursor.execute("PRAGMA cache_size=-262144")  # KiB: 256 MiB
                cursor.execute("PRAGMA temp_store=MEMORY")
            else:
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


#: The history columns in the order of `sqlite_history_insert`'s placeholders.
_HISTORY_COLUMNS = (
    "task_id",
    "offset",
    "epoch",
    "event_id",
    "type",
    "progress",
    "current_step",
    "total_steps",
    "completed_steps",
    "message",
    "status",
    "metadata",
    "created_at",
)


#: The task upsert's columns in the order of its placeholders (`TaskRow` but the history
#: floor, which an upsert never sets).
TASK_COLUMNS = (
    "task_id",
    "project_id",
    "owner",
    "status",
    "progress",
    "created_at",
    "updated_at",
    "last_offset",
    "epoch",
    "state",
    "history_floor",
)


def sqlite_sql(engine: Engine, stmt: Any, columns: tuple[str, ...]) -> str:
    """`stmt` as SQLite SQL with `?` placeholders in `columns` order.

    History and task rows are most of what the sink writes (a rebuild writes millions);
    handing them to the driver as tuples skips SQLAlchemy's per-row parameter processing,
    which cost as much as SQLite itself. PostgreSQL keeps the Core statements (batched by
    SQLAlchemy)."""
    compiled = stmt.compile(dialect=engine.dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup or ())
    if order != columns:
        raise RuntimeError(f"unexpected parameters of {stmt.table.name}: {order}")
    return str(compiled)


def sqlite_history_insert(engine: Engine) -> str:
    """The history insert, for `sqlite_history_row`s."""
    stmt = sqlite.insert(_H).on_conflict_do_nothing(index_elements=["task_id", "offset"])
    return sqlite_sql(engine, stmt, _HISTORY_COLUMNS)


def sqlite_history_row(row: dict[str, Any]) -> tuple[Any, ...]:
    values = [row[c] for c in _HISTORY_COLUMNS[:-2]]
    return (*values, row["update_metadata"], _sqlite_time(row["created_at"]))


def sqlite_task_row(row: dict[str, Any]) -> tuple[Any, ...]:
    """A task row (`Rows.task_rows`) for the SQLite task upsert (`TASK_COLUMNS`)."""
    return (
        row["task_id"],
        row["project_id"],
        row["owner"],
        row["status"],
        row["progress"],
        _sqlite_time(row["created_at"]),
        _sqlite_time(row["updated_at"]),
        row["last_offset"],
        row["epoch"],
        row["state"],
        -1,
    )


def _sqlite_time(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text (the times are UTC), so both paths store the same."""
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def history_params(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["metadata"] = out.pop("update_metadata")
    return out

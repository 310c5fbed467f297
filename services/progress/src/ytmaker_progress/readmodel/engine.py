"""The read model's database connection: engines for SQLite (WAL) and PostgreSQL, and the
SQLite fast path for history rows, most of what the sink writes."""

from __future__ import annotations

import operator
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.pool import StaticPool

from ytmaker_progress.readmodel.tables import HistoryRow

_H = HistoryRow.__table__  # type: ignore[attr-defined]


def make_engine(url: str, *, bulk: bool = False) -> Engine:
    """An engine for `url`; SQLite files get WAL and a busy timeout.

    `bulk` is for filling a fresh database that is thrown away if the fill fails (a
    rebuild): SQLite then keeps no journal, skips fsync and keeps a large page cache. Open
    the database again without `bulk` to serve it (in WAL)."""
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
            if bulk:
                # No journal: a rebuild that fails leaves a database to throw away anyway,
                # and WAL would write every page twice (a fifth of the writes' CPU).
                cursor.execute("PRAGMA journal_mode=OFF")
                cursor.execute("PRAGMA synchronous=OFF")
                cursor.execute("PRAGMA cache_size=-262144")  # KiB: 256 MiB
                cursor.execute("PRAGMA temp_store=MEMORY")
            else:
                cursor.execute("PRAGMA journal_mode=WAL")
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


def sqlite_history_insert(engine: Engine) -> str:
    """The history insert as SQLite SQL with `?` placeholders in `_HISTORY_COLUMNS` order.

    History rows are most of what the sink writes (a rebuild writes millions); handing them
    to the driver as tuples skips SQLAlchemy's per-row parameter processing, which cost as
    much as SQLite itself. PostgreSQL keeps the Core statement (batched by SQLAlchemy)."""
    stmt = sqlite.insert(_H).on_conflict_do_nothing(index_elements=["task_id", "offset"])
    compiled = stmt.compile(dialect=engine.dialect, column_keys=list(_HISTORY_COLUMNS))
    order = tuple(compiled.positiontup or ())
    if order != _HISTORY_COLUMNS:
        raise RuntimeError(f"unexpected history insert parameters: {order}")
    return str(compiled)


_HISTORY_VALUES = operator.itemgetter(*_HISTORY_COLUMNS[:-2], "update_metadata")


def sqlite_history_row(row: dict[str, Any]) -> tuple[Any, ...]:
    # SQLAlchemy's SQLite DATETIME text, so both paths store the same: the time without its
    # offset (the times are UTC), which is the first 26 characters of its ISO form.
    created = row["created_at"].isoformat(" ", "microseconds")[:26]
    return (*_HISTORY_VALUES(row), created)


def history_params(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["metadata"] = out.pop("update_metadata")
    return out

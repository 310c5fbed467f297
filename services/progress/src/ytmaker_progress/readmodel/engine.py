"""The read model's database connection: engines for SQLite (WAL) and PostgreSQL, and the
SQLite fast path for the rows the sink writes most (history, tasks, stage attempts)."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool

#: Pages the WAL may hold before a write checkpoints it into the database (SQLite's default is
#: 1,000): at most ~40 MiB of WAL with 4-KiB pages.
WAL_AUTOCHECKPOINT_PAGES = 10_000


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
                # The sink rewrites the same pages (every live task's row) write after write;
                # a checkpoint copies each page once however often the WAL holds it, so fewer
                # checkpoints copy less (decision 0117).
                cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            cursor.close()

        return engine
    # Times travel in UTC whatever the server's zone: in another, a time of year 9999 (or 1)
    # in UTC comes back as year 10000 (or 0), which the driver cannot read.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"options": "-c timezone=UTC"},
    )


class DriverStatement:
    """An insert handed to SQLite's driver as tuples, in the compiled statement's order.

    The sink writes a history row per update and a task row per task and batch; building
    their parameters through SQLAlchemy (per row: a dict, each value's bind processor) cost
    as much as SQLite itself. `params(row)` takes the row as the Core statement would (a dict
    by column) and gives the tuple, times in SQLAlchemy's SQLite DATETIME text, so both paths
    store the same. PostgreSQL keeps the Core statements (batched by SQLAlchemy)."""

    def __init__(
        self,
        engine: Engine,
        stmt: Any,
        columns: Sequence[str],
        *,
        times: Sequence[str] = (),
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        defaults = defaults or {}
        compiled = stmt.compile(dialect=engine.dialect, column_keys=list(columns))
        order = tuple(compiled.positiontup or ())
        if order != (*columns, *defaults):  # the columns' Python defaults come last
            raise RuntimeError(f"unexpected parameters of {stmt.table}: {order}")
        self.sql = str(compiled)
        self._values = operator.itemgetter(*columns)
        self._times = tuple(columns.index(c) for c in times)
        self._defaults = tuple(defaults.values())

    def params(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = list(self._values(row))
        for i in self._times:
            values[i] = sqlite_time(values[i])
        return (*values, *self._defaults)


def sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DATETIME text: the time without its offset (the read model's
    times are UTC), which is the first 26 characters of its ISO form."""
    return None if value is None else value.isoformat(" ", "microseconds")[:26]

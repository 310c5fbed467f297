"""The read model's database: writes from the sink, queries for the API.

Synchronous SQLAlchemy (run it in a worker thread from async code). SQLite (WAL) by default,
PostgreSQL in production; the same statements serve both (`INSERT ... ON CONFLICT`).
Every write of the sink is idempotent on (task_id, offset) and stores the sink's positions in
the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ytmaker_progress.readmodel import migrations
from ytmaker_progress.readmodel.engine import DriverStatement, make_engine
from ytmaker_progress.readmodel.rows import (
    HistoryItem,
    Positions,
    Rows,
    StoredUpdate,
    history_item,
)
from ytmaker_progress.readmodel.tables import (
    HistoryRow,
    ProjectRow,
    SessionRow,
    SinkPosition,
    StageRunRow,
    TaskRow,
)
from ytmaker_shared.progress import ACTIVE_STATUSES, TERMINAL_STATUSES

_T = TaskRow.__table__  # type: ignore[attr-defined]
_H = HistoryRow.__table__  # type: ignore[attr-defined]
_P = ProjectRow.__table__  # type: ignore[attr-defined]
_S = StageRunRow.__table__  # type: ignore[attr-defined]
_W = SessionRow.__table__  # type: ignore[attr-defined]
_POS = SinkPosition.__table__  # type: ignore[attr-defined]

_TERMINAL = tuple(str(s) for s in TERMINAL_STATUSES)
_ACTIVE = tuple(str(s) for s in ACTIVE_STATUSES)


class NotFinished(Exception):
    """The task is still running: its history cannot be deleted."""


def _columns(table: Any, *without: str) -> tuple[str, ...]:
    """The columns the sink's rows of `table` hold (`rows.py`), in the table's order."""
    return tuple(c.name for c in table.c if c.name not in without)


@dataclass(frozen=True)
class _Upserts:
    """The sink's statements, built once per store: a statement is immutable, and building
    `excluded`'s column proxies on every write was 6.6 % of the read side's samples at S1
    (py-spy, 1,000 updates/s)."""

    projects: Any
    history: Any
    tasks: Any
    stage_runs: Any
    positions: Any

    @classmethod
    def build(cls, ins: Any) -> _Upserts:
        projects, tasks, stage_runs, positions = ins(_P), ins(_T), ins(_S), ins(_POS)
        return cls(
            projects=projects.on_conflict_do_update(
                index_elements=["project_id"],
                set_={c.name: projects.excluded[c.name] for c in _P.c if c.name != "project_id"},
                where=or_(  # the earliest request names the project
                    _P.c.created_at > projects.excluded.created_at,
                    and_(
                        _P.c.created_at == projects.excluded.created_at,
                        _P.c.first_task_id > projects.excluded.first_task_id,
                    ),
                ),
            ),
            history=ins(_H).on_conflict_do_nothing(index_elements=["task_id", "offset"]),
            tasks=tasks.on_conflict_do_update(
                index_elements=["task_id"],
                set_={
                    c: tasks.excluded[c]
                    for c in (
                        "status",
                        "progress",
                        "created_at",  # the fold's may move earlier (a late request)
                        "updated_at",
                        "last_offset",
                        "epoch",
                        "state",
                        "stored_at",
                    )
                },
                where=_T.c.last_offset < tasks.excluded.last_offset,
            ),
            stage_runs=stage_runs.on_conflict_do_update(
                index_elements=["task_id", "stage", "attempt"],
                set_={c: stage_runs.excluded[c] for c in ("status", "duration_s", "finished_at")},
            ),
            positions=positions.on_conflict_do_update(
                index_elements=["topic", "partition"],
                set_={
                    "next_offset": positions.excluded.next_offset,
                    "epoch": positions.excluded.epoch,
                },
            ),
        )


@dataclass(frozen=True)
class _DriverUpserts:
    """The sink's three busiest statements for SQLite's driver (`DriverStatement`): at S1
    (1,000 updates/s) SQLAlchemy's parameters for the task rows alone were ~5 % of the read
    side's samples (py-spy) and half of its writer thread's Python."""

    history: DriverStatement
    tasks: DriverStatement
    stage_runs: DriverStatement

    @classmethod
    def build(cls, engine: Any, upserts: _Upserts) -> _DriverUpserts:
        return cls(
            history=DriverStatement(
                engine,
                upserts.history,
                _columns(_H, "id"),
                times=("created_at",),
            ),
            tasks=DriverStatement(
                engine,
                upserts.tasks,
                _columns(_T, "history_floor"),
                times=("created_at", "updated_at", "stored_at"),
                defaults={"history_floor": -1},
            ),
            stage_runs=DriverStatement(
                engine, upserts.stage_runs, _columns(_S), times=("finished_at",)
            ),
        )


def _insert(
    conn: Connection, core: Any, fast: DriverStatement | None, rows: list[dict[str, Any]]
) -> None:
    """Insert `rows` with SQLite's driver where there is a fast statement, else by Core."""
    if not rows:
        return
    if fast is not None:
        conn.exec_driver_sql(fast.sql, [fast.params(r) for r in rows])
    else:
        conn.execute(core, rows)


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """The read model. `Store(url)` connects and migrates; `close()` when done. `bulk=True`
    only for a fresh database being rebuilt (see `make_engine`); `clock` tells the time the
    task rows are stored at (UTC)."""

    def __init__(
        self, url: str, *, bulk: bool = False, clock: Callable[[], datetime] = _now
    ) -> None:
        self.clock = clock
        self.engine = make_engine(url, bulk=bulk)
        migrations.upgrade(self.engine)
        dialect = self.engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._upserts = _Upserts.build(self._insert)
        self._driver = (
            _DriverUpserts.build(self.engine, self._upserts) if dialect == "sqlite" else None
        )
        # A bulk fill of SQLite maintains only the history's unique index; `finish_bulk`
        # creates the others at the end, in one sorted pass each.
        self._deferred = (
            [ix for ix in _H.indexes if not ix.unique] if bulk and dialect == "sqlite" else []
        )
        if self._deferred:
            with self.engine.begin() as conn:
                for index in self._deferred:
                    index.drop(conn, checkfirst=True)

    def finish_bulk(self) -> None:
        """After a bulk fill: create the indexes it left out. Call before `close`."""
        with self.engine.begin() as conn:
            for index in self._deferred:
                index.create(conn, checkfirst=True)
        self._deferred = []

    def close(self) -> None:
        self.engine.dispose()

    # --- the sink's writes ----------------------------------------------------------------

    def write(self, rows: Rows, positions: Positions) -> None:
        """Store one batch and the positions after it, atomically; idempotent. Each task row
        changed keeps when it was stored (`stored_at`, this process's clock)."""
        up, d = self._upserts, self._driver
        with self.engine.begin() as conn:
            if rows.projects:
                conn.execute(up.projects, list(rows.projects.values()))
            _insert(conn, up.history, d.history if d else None, rows.history)
            task_rows = rows.task_rows(stored_at=self.clock())
            _insert(conn, up.tasks, d.tasks if d else None, task_rows)
            stage_runs = list(rows.stage_runs.values())
            _insert(conn, up.stage_runs, d.stage_runs if d else None, stage_runs)
            if positions:
                conn.execute(
                    up.positions,
                    [
                        {"topic": t, "partition": p, "next_offset": o, "epoch": e}
                        for (t, p), (o, e) in positions.items()
                    ],
                )

    def positions(self) -> Positions:
        with self.engine.connect() as conn:
            return {
                (r.topic, r.partition): (r.next_offset, r.epoch) for r in conn.execute(select(_POS))
            }

    # --- tasks and projects ---------------------------------------------------------------

    def task(self, task_id: str) -> dict[str, Any] | None:
        """The task's latest state (TaskState JSON with offset and epoch), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_T).where(_T.c.task_id == task_id)).first()
        return _state(row) if row else None

    def tasks_by_id(self, task_ids: list[str]) -> list[dict[str, Any]]:
        """The latest states of those of `task_ids` the read model knows, in no order."""
        with self.engine.connect() as conn:
            query = select(_T).where(_T.c.task_id.in_(set(task_ids)))
            return [_state(row) for row in conn.execute(query)]

    def task_row(self, task_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(_T).where(_T.c.task_id == task_id)).first()

    def tasks(
        self,
        *,
        owner: str | None = None,
        project_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first."""
        query = select(_T).order_by(_T.c.created_at.desc(), _T.c.task_id).limit(limit)
        for column, value in (("owner", owner), ("project_id", project_id), ("status", status)):
            if value is not None:
                query = query.where(_T.c[column] == value)
        with self.engine.connect() as conn:
            return [_state(row) for row in conn.execute(query)]

    def silent_tasks(
        self, before: datetime, limit: int = 1000, after: tuple[datetime, str] | None = None
    ) -> list[dict[str, Any]]:
        """Queued or running tasks (not paused) silent since before `before`, longest silent
        first: what the stall watch looks at. Each state's `updated_at` is when its latest
        update says it happened (the update's own time where its state has none), and
        `silent_since` when its silence began: that time, or when this read model stored the
        update if that was earlier (an update dated in the future, by a clock ahead or a
        hostile writer, would otherwise keep its task from the watch until that future
        came); both in UTC. `after` (the last task's `silent_since` and task id) gives the
        page that follows it."""
        since = _silent_since()
        query = (
            select(_T, since.label("silent_since"))
            .where(_T.c.status.in_(("queued", "running")), since < before)
            .order_by(since, _T.c.task_id)
            .limit(limit)
        )
        if after is not None:
            last_since, last_task = after
            query = query.where(
                or_(since > last_since, and_(since == last_since, _T.c.task_id > last_task))
            )
        with self.engine.connect() as conn:
            return [
                _state(row)
                | {
                    "updated_at": as_utc(row.updated_at).isoformat(),
                    "silent_since": as_utc(row.silent_since).isoformat(),
                }
                for row in conn.execute(query)
            ]

    def project(self, project_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_P).where(_P.c.project_id == project_id)).first()
        if row is None:
            return None
        return {
            "project_id": row.project_id,
            "owner": row.owner,
            "title": row.title,
            "content": row.content,
            "settings": json.loads(row.settings),
            "created_at": row.created_at,
        }

    # --- history ----------------------------------------------------------------------------

    def history(
        self, task_id: str, *, since: int = -1, limit: int | None = None
    ) -> list[HistoryItem]:
        """Stored updates with offset > since (and above the deleted floor), by offset."""
        return [history_item(u) for u in self.history_text(task_id, since=since, limit=limit)]

    def history_text(
        self, task_id: str, *, since: int = -1, limit: int | None = None
    ) -> list[StoredUpdate]:
        """`history`, unparsed."""
        floor = select(_T.c.history_floor).where(_T.c.task_id == task_id).scalar_subquery()
        query = (
            select(_H.c.offset, _H.c.epoch, _H.c.metadata)
            .where(_H.c.task_id == task_id, _H.c.offset > since)
            .where(_H.c.offset > func.coalesce(floor, -1))
            .order_by(_H.c.offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [(r.offset, r.epoch, r.metadata) for r in conn.execute(query)]

    def delete_history(self, task_id: str) -> bool:
        """Delete a finished task's stored history; False for an unknown task.
        Raises NotFinished for a task that has not finished."""
        with self.engine.begin() as conn:
            row = conn.execute(select(_T).where(_T.c.task_id == task_id)).first()
            if row is None:
                return False
            if row.status not in _TERMINAL:
                raise NotFinished(task_id)
            conn.execute(delete(_H).where(_H.c.task_id == task_id))
            conn.execute(
                update(_T).where(_T.c.task_id == task_id).values(history_floor=row.last_offset)
            )
        return True

    def cleanup(self, older_than: datetime) -> int:
        """Forget finished tasks last updated before `older_than`; return how many. A task
        counts as updated at the earlier of its `updated_at` and when this read model stored
        it (`_silent_since`, as `silent_tasks`): one dated in the future (a clock ahead, a
        hostile event) would otherwise never be forgotten."""
        with self.engine.begin() as conn:
            old = select(_T.c.task_id).where(
                _T.c.status.in_(_TERMINAL), _silent_since() < older_than
            )
            ids = [r.task_id for r in conn.execute(old)]
            for chunk in _chunks(ids, 500):
                conn.execute(delete(_H).where(_H.c.task_id.in_(chunk)))
                conn.execute(delete(_T).where(_T.c.task_id.in_(chunk)))
        return len(ids)

    # --- stats and ETA ----------------------------------------------------------------------

    def stats(self, owner: str | None = None) -> dict[str, Any]:
        with self.engine.connect() as conn:
            counts = select(_T.c.status, func.count()).group_by(_T.c.status)
            runs = select(
                _S.c.stage,
                func.avg(_S.c.duration_s).filter(_S.c.status == "completed"),
                func.count().filter(_S.c.status == "failed"),
                func.count(),
            ).group_by(_S.c.stage)
            if owner is not None:
                counts = counts.where(_T.c.owner == owner)
                runs = runs.where(_S.c.owner == owner)
            by_status = {status: n for status, n in conn.execute(counts)}
            stages = {
                stage: {
                    "avg_duration_s": float(avg) if avg is not None else None,
                    "failure_rate": failed / total if total else 0.0,
                }
                for stage, avg, failed, total in conn.execute(runs)
            }
        return {
            "total_tasks": sum(by_status.values()),
            "active_tasks": sum(by_status.get(s, 0) for s in _ACTIVE),
            "completed_tasks": by_status.get("completed", 0),
            "failed_tasks": by_status.get("failed", 0),
            "cancelled_tasks": by_status.get("cancelled", 0),
            "stages": stages,
        }

    def recent_stage_durations(self, since: datetime) -> dict[str, float]:
        """Average duration of each stage over the completed attempts finished since `since`;
        a duration below zero (a clock that jumped back during the stage) does not count, as
        in the ETA projector's window."""
        query = (
            select(_S.c.stage, func.avg(_S.c.duration_s))
            .where(
                and_(
                    _S.c.status == "completed",
                    _S.c.finished_at >= since,
                    _S.c.duration_s >= 0,
                )
            )
            .group_by(_S.c.stage)
        )
        with self.engine.connect() as conn:
            return {stage: float(avg) for stage, avg in conn.execute(query) if avg is not None}

    def recent_stage_runs(
        self, since: datetime
    ) -> list[tuple[str, str, int, float, datetime, str]]:
        """The completed attempts with a duration finished since `since`, oldest first:
        `(task_id, stage, attempt, duration_s, finished_at, the task's status)`."""
        query = (
            select(_S.c.task_id, _S.c.stage, _S.c.attempt, _S.c.duration_s, _S.c.finished_at)
            .add_columns(_T.c.status)
            .join(_T, _T.c.task_id == _S.c.task_id)
            .where(
                and_(
                    _S.c.status == "completed",
                    _S.c.finished_at >= since,
                    _S.c.duration_s.is_not(None),
                )
            )
            .order_by(_S.c.finished_at)
        )
        with self.engine.connect() as conn:
            return [
                (task, stage, attempt, seconds, as_utc(finished), status)
                for task, stage, attempt, seconds, finished, status in conn.execute(query)
            ]

    # --- sessions ---------------------------------------------------------------------------

    def upsert_session(self, session: dict[str, Any]) -> dict[str, Any]:
        """Insert or update one session record; the record as stored."""
        self.upsert_sessions([session])
        with self.engine.connect() as conn:
            row = conn.execute(select(_W).where(_W.c.client_id == session["client_id"])).one()
        return _session(row)

    def upsert_sessions(self, sessions: list[dict[str, Any]]) -> None:
        """Insert or update session records, all in one transaction (a gateway's checkpoint
        of a thousand clients is one commit, not a thousand). Every record has the same fields
        (`api._session_in` makes them)."""
        if not sessions:
            return
        rows = [{**s, "subscriptions": json.dumps(s.get("subscriptions", []))} for s in sessions]
        stmt = self._insert(_W)
        upsert = stmt.on_conflict_do_update(
            index_elements=["client_id"],
            set_={c: stmt.excluded[c] for c in rows[0] if c != "client_id"},
        )
        with self.engine.begin() as conn:
            conn.execute(upsert, rows)

    def sessions(self, *, active: bool | None = None, user: str | None = None) -> list[Any]:
        query = select(_W).order_by(_W.c.connected_at.desc())
        if active is True:
            query = query.where(_W.c.disconnected_at.is_(None))
        elif active is False:
            query = query.where(_W.c.disconnected_at.is_not(None))
        if user is not None:
            query = query.where(_W.c.user == user)
        with self.engine.connect() as conn:
            return [_session(row) for row in conn.execute(query)]

    # --- comparison (rebuild) ---------------------------------------------------------------

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row that the log determines, in a stable order, for comparing two stores."""
        with self.engine.connect() as conn:
            return {
                "projects": [tuple(r) for r in conn.execute(select(_P).order_by(_P.c.project_id))],
                "tasks": [
                    tuple({**r._mapping, "state": _canonical(r.state)}.values())
                    for r in conn.execute(
                        select(*[c for c in _T.c if c.name not in _LOCAL]).order_by(_T.c.task_id)
                    )
                ],
                "history": [
                    tuple(r)
                    for r in conn.execute(
                        select(*[c for c in _H.c if c.name != "id"]).order_by(
                            _H.c.task_id, _H.c.offset
                        )
                    )
                ],
                "stage_runs": [
                    tuple(r)
                    for r in conn.execute(
                        select(_S).order_by(_S.c.task_id, _S.c.stage, _S.c.attempt)
                    )
                ],
            }


#: Task columns that are this read model's own, not the log's: a rebuild differs in them.
_LOCAL = frozenset({"history_floor", "stored_at"})


def _silent_since() -> Any:
    """The earlier of a task's `updated_at` and `stored_at` (None before migration 3: the
    former), in SQL that SQLite and PostgreSQL both speak."""
    return case((_T.c.stored_at < _T.c.updated_at, _T.c.stored_at), else_=_T.c.updated_at)


def as_utc(at: datetime) -> datetime:
    """SQLite gives back the UTC times it stores without their zone."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _canonical(text: str) -> str:
    """A JSON column as its meaning: writers may spell the same state differently
    (`rows.state_text`)."""
    return json.dumps(json.loads(text), sort_keys=True)


def _state(row: Any) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(row.state)
    state["offset"], state["epoch"] = row.last_offset, row.epoch
    return state


def _session(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["subscriptions"] = json.loads(out["subscriptions"])
    return out


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

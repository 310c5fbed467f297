"""The read model's tables (SQLModel): a projection of `progress.updates` and `pipeline.tasks`
that can be dropped and rebuilt from the log. Schema changes go through
`readmodel.migrations`, never `create_all` on a live database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _ts(**kw: object) -> Column[datetime]:
    return Column(DateTime(timezone=True), **kw)  # type: ignore[arg-type]


class ProjectRow(SQLModel, table=True):
    """A project, from its earliest `task.requested` (by time, then task id: deterministic,
    whatever order a replay reads the partitions in)."""

    __tablename__ = "projects"
    project_id: str = Field(primary_key=True, max_length=64)
    owner: str = Field(index=True, max_length=128)
    title: str = Field(max_length=200)
    content: str = Field(sa_type=Text)
    settings: str = Field(sa_type=Text, description="ProjectSettings JSON")
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    first_task_id: str = Field(max_length=64)


class TaskRow(SQLModel, table=True):
    """A task's latest state (the state of its update with the highest offset)."""

    __tablename__ = "tasks"
    task_id: str = Field(primary_key=True, max_length=64)
    project_id: str = Field(index=True, max_length=64)
    owner: str = Field(index=True, max_length=128)
    status: str = Field(index=True, max_length=20)
    progress: float
    created_at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))
    last_offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    epoch: str | None = Field(default=None, max_length=64)
    state: str = Field(sa_type=Text, description="TaskState JSON")
    stored_at: datetime | None = Field(
        default=None,
        sa_column=_ts(nullable=True),
        description="When this read model stored the latest update, by its own clock: the "
        "stall watch's silence where the update is dated later (a clock ahead, a hostile "
        "writer). Not determined by the log: a rebuild stores its own.",
    )
    history_floor: int = Field(
        default=-1,
        sa_column=Column(BigInteger, nullable=False, default=-1),
        description="Updates at or below this offset were deleted from the stored history.",
    )


class HistoryRow(SQLModel, table=True):
    """One update of a task (the first design's ProgressHistory, plus offset, epoch, event)."""

    __tablename__ = "progress_history"
    __table_args__ = (
        UniqueConstraint("task_id", "offset", name="uq_history_task_offset"),
        Index("ix_history_created_at", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(max_length=64)
    offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    epoch: str | None = Field(default=None, max_length=64)
    event_id: str = Field(max_length=64)
    type: str = Field(max_length=20)
    progress: float
    current_step: str | None = Field(default=None, max_length=200)
    total_steps: int | None = None
    completed_steps: int | None = None
    message: str = Field(default="", sa_type=Text)
    status: str = Field(max_length=20)
    update_metadata: str = Field(
        sa_column=Column("metadata", Text, nullable=False), description="ProgressUpdate JSON"
    )
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class StageRunRow(SQLModel, table=True):
    """One attempt of one stage of one task, once it has finished: stats and the ETA."""

    __tablename__ = "stage_runs"
    task_id: str = Field(primary_key=True, max_length=64)
    stage: str = Field(primary_key=True, max_length=20)
    attempt: int = Field(primary_key=True)
    owner: str = Field(index=True, max_length=128)
    status: str = Field(max_length=20)
    duration_s: float | None = None
    finished_at: datetime = Field(sa_column=_ts(nullable=False, index=True))


class SessionRow(SQLModel, table=True):
    """A WebSocket session as the gateway reports it (the first design's WebSocketSession)."""

    __tablename__ = "ws_sessions"
    client_id: str = Field(primary_key=True, max_length=100)
    user: str = Field(index=True, max_length=128)
    connected_at: datetime = Field(sa_column=_ts(nullable=False))
    disconnected_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_active_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    message_count: int = 0
    address: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=500)
    subscriptions: str = Field(default="[]", sa_type=Text, description="JSON list of task ids")
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class SinkPosition(SQLModel, table=True):
    """The next offset to read per input partition, written in the same database transaction
    as the rows it produced: the sink is exactly-once into the database."""

    __tablename__ = "sink_positions"
    topic: str = Field(primary_key=True, max_length=255)
    partition: int = Field(primary_key=True)
    next_offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    epoch: str | None = Field(default=None, max_length=64)

"""The progress service's settings: the shared ones plus its own (env prefix `YTMAKER_`)."""

from __future__ import annotations

from pydantic import Field

from ytmaker_progress.stall import StallPolicy
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.stages import Stage


class ProgressSettings(ServiceSettings):
    """`YTMAKER_PROGRESS_*` variables, besides those every service reads."""

    progress_http_host: str = Field(default="127.0.0.1", description="Internal API host.")
    progress_http_port: int = Field(default=8081, ge=0, le=65535, description="0: a free port.")
    progress_database_url: str = Field(
        default="sqlite:///./progress.db",
        description="Read model: sqlite:///path (WAL) or postgresql+psycopg://user@host/db.",
    )
    progress_group_id: str = Field(
        default="progress-fold",
        description="Consumer group of the fold; also the stem of its transactional ids.",
    )
    progress_fold_batch_size: int = Field(
        default=10_000, ge=1, description="Records per poll, folded in one transaction per lane."
    )
    progress_backlog_records: int = Field(
        default=0,
        ge=0,
        description="An input partition further behind than this is a backlog: its lane holds "
        "later records of its other topics until it catches up (decision 0026). Above 0 "
        "trades strict cross-topic order in small backlogs for live latency.",
    )
    progress_fetch_max_wait_ms: int = Field(
        default=10,
        ge=0,
        description="How long the broker may hold a fetch of the fold's inputs for more data: "
        "each fetch is a round of the fold, ~2 ms of CPU whatever it brings (decisions 0103 "
        "and 0105).",
    )
    progress_fetch_min_bytes: int = Field(
        default=64 * 1024,
        ge=1,
        description="How many bytes of inputs a fetch of the fold waits for (at most "
        "`progress_fetch_max_wait_ms`) while events flow: fewer, larger rounds, each a fetch "
        "and a produce request (decision 0096). Idle, a fetch returns with the first event.",
    )
    progress_linger_ms: int = Field(
        default=0,
        ge=0,
        description="How long a lane's producer gathers updates before sending them.",
    )
    progress_sink_fetch_max_wait_ms: int = Field(
        default=250,
        ge=0,
        description="How long the read model's sink lets the broker gather updates into one "
        "fetch (and one database transaction); the read model lags by up to this much.",
    )
    progress_sink_fetch_min_bytes: int = Field(
        default=256 * 1024,
        ge=1,
        description="How many bytes of updates a fetch of the sink waits for (at most "
        "`progress_sink_fetch_max_wait_ms`).",
    )
    progress_retry_backoff_ms: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="How long a lane's producer waits before retrying a request, including "
        "adding a partition to a new transaction while the previous one's markers are still "
        "being written (decision 0027).",
    )
    progress_report_positions_s: float = Field(
        default=5.0,
        gt=0,
        description="How often the fold also commits its input positions to its consumer "
        "group, for lag monitoring (it resumes from those in its own transactions, 0029).",
    )
    progress_checkpoint_interval_ms: float = Field(
        default=5000,
        gt=0,
        description="How often a lane commits a checkpoint (the states it changed, its input "
        "positions) to progress.state, while it goes on folding (decision 0096). Updates go "
        "out as soon as they are folded whatever this is; a longer interval writes fewer "
        "states and costs a longer restore after a crash (decision 0038).",
    )
    progress_transaction_timeout_ms: int = Field(default=60_000, ge=1000)
    progress_session_timeout_ms: int = Field(
        default=10_000, ge=1000, description="How soon the group notices a dead fold member."
    )
    progress_memory_history: int = Field(
        default=100, ge=1, description="Recent updates kept in memory per task..."
    )
    progress_memory_history_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="...in this many bytes at most: past it, the task updated longest ago is "
        "read from the database again when asked for (decision 0046).",
    )
    progress_retention_days: float = Field(
        default=30.0, gt=0, description="Finished tasks older than this are cleaned up."
    )
    progress_cleanup_interval_s: float = Field(default=3600.0, gt=0)
    progress_eta_window_s: float = Field(
        default=3600.0, gt=0, description="Stage durations older than this do not count (ETA)."
    )
    progress_evict_after_s: float = Field(
        default=60.0,
        ge=0,
        description="A finished task's full state leaves the fold's memory after this.",
    )
    progress_marker_retention_s: float = Field(
        default=28 * 24 * 3600.0,
        ge=0,
        description="How long the fold remembers that an evicted task had finished (the "
        "input topics' retention: no older event can be redelivered), counted from its marker "
        "record on progress.state; then the task's record there is deleted (decision 0100).",
    )
    progress_eta_step_s: float = Field(
        default=60.0, gt=0, description="How far the ETA's hopping window moves at a time."
    )
    progress_stall_check_s: float = Field(
        default=30.0, gt=0, description="How often the read side looks for stalled tasks."
    )
    progress_stage_time_limit_s: float = Field(
        default=30 * 60.0,
        gt=0,
        description="A stage's hard time limit, as the stage services enforce it "
        "(YTMAKER_STAGE_HARD_TIME_LIMIT_S there): a task silent for longer, plus the grace, "
        "has stalled and is failed with the error code `stalled`.",
    )
    progress_stage_time_limits: dict[Stage, float] = Field(
        default_factory=dict,
        description='Per-stage hard time limits that differ, as JSON: {"render": 3600}.',
    )
    progress_stall_grace_s: float = Field(
        default=5 * 60.0, ge=0, description="Silence allowed beyond a stage's time limit."
    )
    progress_run_eta: bool = Field(
        default=True,
        description="Run the ETA projector (estimates into progress.eta), with the read side: "
        "it is fed by the read model's sink.",
    )
    progress_run_fold: bool = Field(default=True, description="Run the fold in this process.")
    progress_run_api: bool = Field(default=True, description="Run the read model and API.")

    def stall_policy(self) -> StallPolicy:
        return StallPolicy(
            default_limit_s=self.progress_stage_time_limit_s,
            limits_s={stage.value: s for stage, s in self.progress_stage_time_limits.items()},
            grace_s=self.progress_stall_grace_s,
        )

    @property
    def fold_group_id(self) -> str:
        """The fold's consumer group, under the topic prefix so test runs never share one."""
        return f"{self.topic_prefix}{self.progress_group_id}"

    def transactional_ids(self, lane: int) -> tuple[str, str]:
        """The two transactional ids of a lane (an input partition number), taking turns:
        one commits a checkpoint while the other carries the lane's next updates (decision
        0096). Each fences its zombie."""
        return f"{self.fold_group_id}-lane-{lane}", f"{self.fold_group_id}-lane-{lane}-b"

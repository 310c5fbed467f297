"""The stage worker framework every stage service shares (decision 0010).

A stage service writes `StageWork` subclasses (`starts(event)`, `run(ctx) -> StageResult`)
and runs them with `StageWorker(settings, service, works, topics).run(stopping)`.
"""

from ytmaker_shared.stageworker.control import Control, ControlBoard
from ytmaker_shared.stageworker.errors import (
    INTERNAL_ERROR,
    TIME_LIMIT,
    PermanentError,
    StageError,
    TransientError,
    error_for_status,
    is_transient_status,
    parse_retry_after,
)
from ytmaker_shared.stageworker.offsets import OffsetTracker
from ytmaker_shared.stageworker.outbox import Outbox
from ytmaker_shared.stageworker.policy import StagePolicy
from ytmaker_shared.stageworker.reporter import ProgressReporter, percent
from ytmaker_shared.stageworker.runner import Job, JobRunner, StopReason
from ytmaker_shared.stageworker.settings import StageSettings
from ytmaker_shared.stageworker.work import JobContext, StageResult, StageWork, workspace_prefix
from ytmaker_shared.stageworker.worker import StageWorker, run_stage_service

__all__ = [
    "INTERNAL_ERROR",
    "TIME_LIMIT",
    "Control",
    "ControlBoard",
    "Job",
    "JobContext",
    "JobRunner",
    "OffsetTracker",
    "Outbox",
    "PermanentError",
    "ProgressReporter",
    "StageError",
    "StagePolicy",
    "StageResult",
    "StageSettings",
    "StageWork",
    "StageWorker",
    "StopReason",
    "TransientError",
    "error_for_status",
    "is_transient_status",
    "parse_retry_after",
    "percent",
    "run_stage_service",
    "workspace_prefix",
]

"""What a stage service writes: a `StageWork` (which event starts it, and the work itself).
Everything else, Kafka, lifecycle events, retries, limits, control and idempotency, is the
shared `StageWorker`'s (decision 0010)."""

from __future__ import annotations

import logging
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ytmaker_shared.artifacts import ArtifactStore
from ytmaker_shared.events import Artifact, Envelope, Event
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker.policy import StagePolicy
from ytmaker_shared.stageworker.reporter import ProgressReporter


@dataclass(frozen=True)
class StageResult:
    """What finished work returns; becomes the payload of `stage.completed`.

    `task_result`, set by the last stage only (upload), also ends the task: `task.completed`
    with that result follows `stage.completed`, through the same outbox."""

    artifacts: tuple[Artifact, ...] = ()
    status: Literal["completed", "skipped"] = "completed"
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    task_result: dict[str, Any] | None = None


def workspace_prefix(task_id: str, stage: Stage) -> str:
    """The artifact-key folder a stage writes one task's artifacts into."""
    return f"{task_id}/{stage.value}/"


@dataclass
class JobContext:
    """Handed to `StageWork.run` for one attempt.

    The work must write its artifacts through `put`/`put_file` (they land in the stage's
    workspace, which is wiped before each attempt and after a cancel or failure), report real
    progress through `progress`, and let `asyncio.CancelledError` through (after stopping any
    subprocess or transfer it started): that is how cancel and the soft time limit reach it.
    """

    event: Event
    stage: Stage
    attempt: int
    store: ArtifactStore
    progress: ProgressReporter
    scratch: Path
    log: logging.LoggerAdapter[logging.Logger]

    @property
    def task_id(self) -> str:
        return self.event.task_id

    @property
    def prefix(self) -> str:
        return workspace_prefix(self.task_id, self.stage)

    async def put(self, name: str, data: bytes, content_type: str | None = None) -> Artifact:
        stored = await self.store.put(self.prefix + name, data, content_type)
        return stored.artifact(name)

    async def put_file(self, name: str, source: Path, content_type: str | None = None) -> Artifact:
        stored = await self.store.put_file(self.prefix + name, source, content_type)
        return stored.artifact(name)


class StageWork(ABC):
    """One stage of a service. Subclasses set `stage` and `policy` and implement `starts` and
    `run`; raise `TransientError`/`PermanentError` from `run` to fail an attempt."""

    stage: Stage
    policy: StagePolicy = StagePolicy()

    @abstractmethod
    def starts(self, event: Event) -> bool:
        """Pure: does this event (from the consumed topics) start this stage's work?"""

    async def admit(self, event: Event) -> bool:
        """Called for every consumed event; True starts the work with `event` as its trigger.
        Defaults to `starts`. Override for a stage that waits for several events (render's
        join): make the join state durable here before returning, because the event's offset
        is committed once this returns False."""
        return self.starts(event)

    @abstractmethod
    async def run(self, ctx: JobContext) -> StageResult:
        """Do the work of one attempt."""


def scratch_dir(task_id: str, stage: Stage) -> Path:
    """A fresh local temporary folder for one attempt (removed by the framework)."""
    return Path(tempfile.mkdtemp(prefix=f"ytmaker-{stage.value}-{task_id[:16]}-"))


def trigger_of(event: Envelope) -> str:
    return f"{event.type}:{event.event_id}"

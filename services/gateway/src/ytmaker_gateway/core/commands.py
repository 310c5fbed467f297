"""The write side: start runs and control them (docs/architecture.md "Topics").

Starting a run emits `task.requested` on `pipeline.tasks`; cancel, pause and resume emit
control requests on `pipeline.control`. Whether the task's state allows the request is decided
here from the read model, and refused with `Conflict` (409) and a clear message otherwise.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ytmaker_gateway.auth import Principal
from ytmaker_gateway.core.access import Access, TaskRef
from ytmaker_gateway.rules.errors import Conflict, TooManyRequests, Unavailable
from ytmaker_gateway.rules.limits import RateLimiter
from ytmaker_shared.events import (
    CONTROL_REQUESTS,
    ControlAction,
    ControlPayload,
    Event,
    ProjectSettings,
    TaskRequested,
    TaskRequestedPayload,
    new_event_id,
)
from ytmaker_shared.kafka import BrokerUnavailable
from ytmaker_shared.progress import ACTIVE_STATUSES, TERMINAL_STATUSES, TaskStatus
from ytmaker_shared.topics import Topic

log = logging.getLogger(__name__)

#: The statuses each control request is accepted in (docs/architecture.md).
ALLOWED_FROM: dict[ControlAction, frozenset[TaskStatus]] = {
    "cancel": ACTIVE_STATUSES,
    "pause": frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING}),
    "resume": frozenset({TaskStatus.PAUSED}),
}


class Producer(Protocol):
    async def send(self, topic: Topic, event: Event) -> Any: ...


@dataclass(frozen=True)
class Started:
    project_id: str
    task_id: str


def refusal(action: ControlAction, status: str) -> str | None:
    """Why `action` is refused for a task in `status`, or None when it is accepted."""
    if status in ALLOWED_FROM[action]:
        return None
    if status in TERMINAL_STATUSES:
        return f"cannot {action} a task that is already {status}"
    if action == "pause":
        return "the task is already paused"
    return f"cannot resume a task that is {status}, only a paused one"


class Commands:
    """`runs` limits how many projects and runs each user may start (429 past it)."""

    def __init__(
        self,
        producer: Producer,
        access: Access,
        producer_name: str,
        runs: RateLimiter | None = None,
    ) -> None:
        self.producer = producer
        self.access = access
        self.producer_name = producer_name
        self.runs = runs

    async def start_run(
        self,
        principal: Principal,
        *,
        title: str,
        content: str,
        settings: ProjectSettings,
        project_id: str | None = None,
    ) -> Started:
        """Emit `task.requested` for a new task (of a new project unless `project_id`);
        raises TooManyRequests past the user's limit, Unavailable when the log is down."""
        if self.runs is not None:
            wait_s = self.runs.take(principal.user, time.monotonic())
            if wait_s:
                raise TooManyRequests(
                    "too many projects and runs started: try again later", retry_after=wait_s
                )
        task_id = new_event_id()
        project_id = project_id or new_event_id()
        event = TaskRequested(
            task_id=task_id,
            project_id=project_id,
            owner=principal.user,
            producer=self.producer_name,
            correlation_id=task_id,
            payload=TaskRequestedPayload(title=title, content=content, settings=settings),
        )
        await self._send(Topic.TASKS, event)
        self.access.recent.add(TaskRef(task_id, project_id, principal.user, title))
        return Started(project_id, task_id)

    async def control(
        self, principal: Principal, task_id: str, action: ControlAction, reason: str = ""
    ) -> dict[str, Any]:
        """Request cancel / pause / resume; raises Forbidden, Conflict or Unavailable."""
        ref, state = await self.access.task(principal, task_id)
        status = self.access.status(task_id, state)
        why = refusal(action, status)
        if why is not None:
            raise Conflict(why, status=status)
        event = CONTROL_REQUESTS[action](
            task_id=task_id,
            project_id=ref.project_id,
            owner=ref.owner,
            producer=self.producer_name,
            correlation_id=task_id,
            payload=ControlPayload(requested_by=principal.user, reason=reason),
        )
        await self._send(Topic.CONTROL, event)
        return {"task_id": task_id, "action": action, "accepted": True, "event_id": event.event_id}

    async def _send(self, topic: Topic, event: Event) -> None:
        try:
            await self.producer.send(topic, event)
        except BrokerUnavailable as exc:  # its addresses and topics are for the operators
            log.warning("event log unavailable", extra={"error": str(exc)})
            raise Unavailable("the event log is unavailable, try again") from None

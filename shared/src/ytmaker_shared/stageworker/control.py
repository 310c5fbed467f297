"""What `pipeline.control` asked of each task: cancelled (final), or paused until
resumed. Every instance folds the whole control topic into one `ControlBoard` (decision 0010)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from enum import StrEnum

from ytmaker_shared.events import CancelTask, Event, PauseTask, ResumeTask


class Control(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class ControlBoard:
    """The control state of every task seen, newest `capacity` tasks kept."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._state: OrderedDict[str, Control] = OrderedDict()
        self._capacity = capacity
        self._changed = asyncio.Event()

    def apply(self, event: Event) -> Control | None:
        """Fold one event; returns the task's new state when it changed, else None. A cancel
        is final: a later pause or resume of that task changes nothing."""
        if isinstance(event, CancelTask):
            new = Control.CANCELLED
        elif isinstance(event, PauseTask):
            new = Control.PAUSED
        elif isinstance(event, ResumeTask):
            new = Control.RUNNING
        else:
            return None
        old = self.state(event.task_id)
        if old is Control.CANCELLED or old is new:
            return None
        self._state[event.task_id] = new
        self._state.move_to_end(event.task_id)
        while len(self._state) > self._capacity:
            self._state.popitem(last=False)
        self._changed.set()
        self._changed = asyncio.Event()
        return new

    def state(self, task_id: str) -> Control:
        return self._state.get(task_id, Control.RUNNING)

    async def wait_until_runnable(self, task_id: str) -> Control:
        """Return once the task is not paused: RUNNING or CANCELLED."""
        while (state := self.state(task_id)) is Control.PAUSED:
            await self._changed.wait()
        return state

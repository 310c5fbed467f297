"""Who owns a task, and whether the caller may see it.

The read model (progress service) knows every task it has folded. A task created a moment ago
through this replica may not be folded yet: the replica remembers what it created, and
otherwise waits a little for the read model before answering `forbidden`, the same answer
as for somebody else's task, so that nobody learns whether a task exists. While the read model
is still catching up (after a restart of the progress service), an unknown task may simply
not be folded yet: the answer is then the retryable `unavailable`, which depends on the
service's state only, never on the task.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ytmaker_gateway.adapters.progress_api import ProgressApi, ProgressUnavailable
from ytmaker_gateway.auth import Principal
from ytmaker_gateway.rules.errors import Forbidden, Unavailable


@dataclass(frozen=True)
class TaskRef:
    task_id: str
    project_id: str
    owner: str
    title: str = ""


class RecentTasks:
    """Tasks this replica created, newest kept (a cache, bounded)."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._items: OrderedDict[str, TaskRef] = OrderedDict()

    def add(self, ref: TaskRef) -> None:
        self._items[ref.task_id] = ref
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def get(self, task_id: str) -> TaskRef | None:
        return self._items.get(task_id)


class Access:
    def __init__(self, progress: ProgressApi, recent: RecentTasks, wait_s: float = 3.0) -> None:
        self.progress = progress
        self.recent = recent
        self.wait_s = wait_s

    async def state(self, task_id: str) -> dict[str, Any] | None:
        """The task's state from the read model; raises Unavailable when it does not answer."""
        try:
            return await self.progress.task(task_id)
        except ProgressUnavailable as exc:
            raise Unavailable(str(exc)) from None

    async def task(
        self, principal: Principal, task_id: str, *, wait: bool = False
    ) -> tuple[TaskRef, dict[str, Any] | None]:
        """The task and its state if `principal` may see it; raises Forbidden otherwise (also
        for an unknown task). With `wait`, a task not yet in the read model is waited for."""
        state = await self.state(task_id)
        ref = self.recent.get(task_id)
        if state is None and ref is None and wait and self.wait_s > 0:
            loop = asyncio.get_running_loop()
            give_up = loop.time() + self.wait_s
            while state is None and loop.time() < give_up:
                await asyncio.sleep(0.2)
                state = await self.state(task_id)
        if state is not None:
            ref = TaskRef(task_id, state["project_id"], state["owner"], state.get("title", ""))
        if ref is None and wait and not await self.progress.caught_up():
            raise Unavailable("the progress read model is catching up; subscribe again shortly")
        if ref is None or not principal.may_see(ref.owner):
            raise Forbidden()
        return ref, state

    async def project(self, principal: Principal, project_id: str) -> dict[str, Any]:
        """`{project, tasks}` if `principal` may see the project; raises Forbidden otherwise."""
        try:
            found = await self.progress.project(project_id)
        except ProgressUnavailable as exc:
            raise Unavailable(str(exc)) from None
        if found is None or not principal.may_see(found["project"]["owner"]):
            raise Forbidden()
        return found

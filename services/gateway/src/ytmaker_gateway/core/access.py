"""Who owns a task, and whether the caller may see it.

The read model (progress service) knows every task it has folded. A task created a moment ago
through this replica may not be folded yet: the replica remembers what it created, and
otherwise waits a little for the read model before answering `forbidden`, the same answer
as for somebody else's task, so that nobody learns whether a task exists. While the read
model is still catching up (after a restart of the progress service), an unknown task may
simply not be folded yet: the answer is then the retryable `unavailable`, which depends on
the service's state only, never on the task. Where the caller waits (a subscribe), somebody
else's task is answered as an unknown one: after the same wait, `forbidden` or `unavailable`
by the same rule (the answer's delay or code would otherwise tell that the task exists).

A project created here a moment ago is waited for in the same way: its owner gets it as soon
as the read model has folded it, or the retryable `unavailable` if that takes longer.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ytmaker_gateway.adapters.progress_api import ProgressApi, ProgressUnavailable
from ytmaker_gateway.auth import Principal
from ytmaker_gateway.rules.errors import Forbidden, Unavailable
from ytmaker_shared.progress import TaskStatus

_T = TypeVar("_T")


@dataclass(frozen=True)
class TaskRef:
    task_id: str
    project_id: str
    owner: str
    title: str = ""


class RecentTasks:
    """Tasks this replica created, newest kept (a cache, bounded), by task and by project."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._items: OrderedDict[str, TaskRef] = OrderedDict()
        self._projects: dict[str, TaskRef] = {}  # the newest run of each project here

    def add(self, ref: TaskRef) -> None:
        self._items[ref.task_id] = ref
        self._projects[ref.project_id] = ref
        while len(self._items) > self._size:
            _, old = self._items.popitem(last=False)
            if self._projects.get(old.project_id) is old:
                del self._projects[old.project_id]

    def get(self, task_id: str) -> TaskRef | None:
        return self._items.get(task_id)

    def project(self, project_id: str) -> TaskRef | None:
        return self._projects.get(project_id)


class LiveStatus(Protocol):
    def status_after(self, task_id: str, offset: int | None, epoch: str | None) -> str | None:
        """The task's status if it has changed after `offset` of `epoch`."""


class Access:
    """`live`: what this gateway has read of the log, ahead of the read model (the hub)."""

    def __init__(
        self,
        progress: ProgressApi,
        recent: RecentTasks,
        wait_s: float = 3.0,
        live: LiveStatus | None = None,
    ) -> None:
        self.progress = progress
        self.recent = recent
        self.wait_s = wait_s
        self.live = live

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
        if state is None and ref is None and wait:
            state = await self._folded(lambda: self.state(task_id))
        if state is not None:
            ref = TaskRef(task_id, state["project_id"], state["owner"], state.get("title", ""))
        if ref is None or not principal.may_see(ref.owner):
            if wait:
                if ref is not None:
                    # Somebody else's task is answered as an unknown one is, as late and with
                    # the same lookups: an earlier or another answer would tell that it exists.
                    await self._folded(lambda: self._looked_up_again(task_id))
                if not await self.progress.caught_up():
                    raise Unavailable(
                        "the progress read model is catching up; subscribe again shortly"
                    )
            raise Forbidden()
        return ref, state

    async def _looked_up_again(self, task_id: str) -> None:
        """What waiting for an unknown task does each time (`_folded`), finding nothing."""
        await self.state(task_id)

    def status(self, task_id: str, state: dict[str, Any] | None) -> str:
        """The task's latest status: the read model's (`state`, `queued` before it has the
        task), or the one of a later update this gateway has already streamed to its clients,
        so that a client acting on what it was just shown is judged by the same status."""
        offset, epoch = (state.get("offset"), state.get("epoch")) if state else (None, None)
        later = self.live.status_after(task_id, offset, epoch) if self.live else None
        if later is not None:
            return later
        return str(state["status"]) if state is not None else TaskStatus.QUEUED.value

    async def project(self, principal: Principal, project_id: str) -> dict[str, Any]:
        """`{project, tasks}` if `principal` may see the project; raises Forbidden otherwise,
        or Unavailable for a project created here that the read model has not folded yet."""
        found = await self._project(project_id)
        if found is None and (ref := self.recent.project(project_id)) is not None:
            if not principal.may_see(ref.owner):
                raise Forbidden()
            found = await self._folded(lambda: self._project(project_id))
            if found is None:
                raise Unavailable("the project was created a moment ago; try again shortly")
        if found is None or not principal.may_see(found["project"]["owner"]):
            raise Forbidden()
        return found

    async def _project(self, project_id: str) -> dict[str, Any] | None:
        try:
            return await self.progress.project(project_id)
        except ProgressUnavailable as exc:
            raise Unavailable(str(exc)) from None

    async def _folded(self, read: Callable[[], Awaitable[_T | None]]) -> _T | None:
        """`read()` again until the read model has it, for `wait_s` at most."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.wait_s
        found = None
        while found is None and loop.time() < give_up:
            await asyncio.sleep(0.2)
            found = await read()
        return found

"""The render join, made durable in the artifact store (`_joins/<task_id>/render.json`) so that
it survives a restart: the offsets of the events folded into it are committed once `admit`
returns, so the store, not memory, must remember them (decision 0010, `StageWork.admit`).

All of a task's asset events are on one partition of `pipeline.assets` (keyed by task_id),
handled in order by one instance; the per-task lock only guards against a redelivery racing
its original within this process.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from ytmaker_render.join import JoinState, apply
from ytmaker_shared.artifacts import ArtifactNotFound, ArtifactStore
from ytmaker_shared.events import Event


class JoinStore:
    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @staticmethod
    def key(task_id: str) -> str:
        return f"_joins/{task_id}/render.json"

    async def load(self, task_id: str) -> JoinState:
        try:
            raw = await self.store.read(self.key(task_id))
        except ArtifactNotFound:
            return JoinState(task_id=task_id)
        return JoinState.model_validate_json(raw)

    async def fold(self, event: Event) -> JoinState:
        """Fold `event` into its task's join and store the result (only when it changed)."""
        async with self._locks[event.task_id]:
            before = await self.load(event.task_id)
            after = apply(before, event)
            if after != before:
                await self.store.put(
                    self.key(event.task_id), after.model_dump_json().encode(), "application/json"
                )
            return after

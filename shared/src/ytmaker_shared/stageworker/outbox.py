"""Idempotency of a stage's outcome (decision 0010): the terminal events of a job are written
to the artifact store *before* they are published, then marked published.

- A redelivered trigger whose job is recorded and published: nothing is done or sent.
- Recorded but not yet published (a crash between the two): the same events, with the same
  `event_id`s, are published again (consumers deduplicate on event_id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import TypeAdapter

from ytmaker_shared.artifacts import ArtifactNotFound, ArtifactStore
from ytmaker_shared.events import EVENT_ADAPTER, Event
from ytmaker_shared.stages import Stage

_EVENTS: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


@dataclass(frozen=True)
class Outcome:
    events: tuple[Event, ...]
    published: bool


class Outbox:
    def __init__(self, store: ArtifactStore, service: str) -> None:
        self.store = store
        self.service = service

    def _key(self, task_id: str, stage: Stage) -> str:
        return f"_jobs/{task_id}/{stage.value}.json"

    async def load(self, task_id: str, stage: Stage) -> Outcome | None:
        try:
            raw = json.loads(await self.store.read(self._key(task_id, stage)))
        except ArtifactNotFound:
            return None
        events = _EVENTS.validate_python(raw["events"])
        return Outcome(tuple(events), bool(raw["published"]))

    async def record(self, task_id: str, stage: Stage, events: list[Event]) -> None:
        await self._write(task_id, stage, events, published=False)

    async def mark_published(self, task_id: str, stage: Stage, events: list[Event]) -> None:
        await self._write(task_id, stage, events, published=True)

    async def _write(
        self, task_id: str, stage: Stage, events: list[Event], *, published: bool
    ) -> None:
        body = {
            "published": published,
            "events": [EVENT_ADAPTER.dump_python(e, mode="json") for e in events],
        }
        await self.store.put(
            self._key(task_id, stage), json.dumps(body).encode(), "application/json"
        )

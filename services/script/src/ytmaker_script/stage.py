"""The script stage: `task.requested` in, a validated script JSON artifact out."""

from __future__ import annotations

from typing import Protocol

from ytmaker_script.domain import offline_script
from ytmaker_shared.events import Event, TaskRequested, TaskRequestedPayload
from ytmaker_shared.script import SCRIPT_ARTIFACT, Script
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import (
    JobContext,
    PermanentError,
    StagePolicy,
    StageResult,
    StageWork,
)


class ScriptWriter(Protocol):
    async def write(self, request: TaskRequestedPayload) -> Script: ...


class OfflineWriter:
    """Deterministic, from the content's own sentences (no key needed)."""

    async def write(self, request: TaskRequestedPayload) -> Script:
        return offline_script(request)


class ScriptWork(StageWork):
    stage = Stage.SCRIPT
    policy = StagePolicy(max_attempts=3)

    def __init__(self, writer: ScriptWriter) -> None:
        self.writer = writer

    def starts(self, event: Event) -> bool:
        return isinstance(event, TaskRequested)

    async def run(self, ctx: JobContext) -> StageResult:
        if not isinstance(ctx.event, TaskRequested):
            raise PermanentError("invalid_trigger", f"script cannot start from {ctx.event.type}")
        request = ctx.event.payload
        # Steps: write (the model call), validate + store.
        await ctx.progress.report(0, 2, "writing the script", current_step="write")
        script = await self.writer.write(request)
        await ctx.progress.report(1, 2, "storing the script", current_step="store")
        artifact = await ctx.put(SCRIPT_ARTIFACT, script.model_dump_json(indent=2).encode())
        await ctx.progress.report(2, 2, f"{len(script.segments)} segments")
        return StageResult(
            artifacts=(artifact,),
            message=f"script with {len(script.segments)} segments",
            result={
                "segments": len(script.segments),
                "duration_seconds": script.duration_seconds,
                "title": script.title,
            },
        )

"""The three asset stages, each its own stage with its own events, all started by the
script's `stage.completed` and run concurrently."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ytmaker_assets.adapters.slides import draw_slide
from ytmaker_assets.adapters.speech import SpeechEngine
from ytmaker_assets.domain import style_for, wav_duration
from ytmaker_shared.events import Artifact, Event, StageCompleted
from ytmaker_shared.script import Script, Segment, parse_script, script_uri
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import (
    JobContext,
    PermanentError,
    StagePolicy,
    StageResult,
    StageWork,
)


class ImageMaker(Protocol):
    """Makes one segment's image: (bytes, content type, file extension)."""

    async def make(
        self, script: Script, segment: Segment, project_id: str
    ) -> tuple[bytes, str, str]: ...


class SlideMaker:
    """Offline: a slide drawn with Pillow, in a thread."""

    async def make(
        self, script: Script, segment: Segment, project_id: str
    ) -> tuple[bytes, str, str]:
        png = await asyncio.to_thread(
            draw_slide,
            script.title,
            segment.caption,
            segment.index,
            len(script.segments),
            style_for(project_id),
        )
        return png, "image/png", "png"


class Avatars(Protocol):
    async def clip(self, ctx: JobContext, segment: Segment) -> tuple[bytes, str]: ...


class _AfterScript(StageWork):
    policy = StagePolicy(max_attempts=3)

    def starts(self, event: Event) -> bool:
        return (
            isinstance(event, StageCompleted)
            and event.stage is Stage.SCRIPT
            and event.payload.status == "completed"
        )

    async def script(self, ctx: JobContext) -> Script:
        if not isinstance(ctx.event, StageCompleted):
            raise PermanentError("invalid_trigger", f"cannot start from {ctx.event.type}")
        uri = script_uri(ctx.event)
        try:
            data = await ctx.store.read_uri(uri, task_id=ctx.task_id)
        except (KeyError, ValueError) as exc:
            raise PermanentError(
                "missing_script", f"cannot read the script {uri}: {exc!r}"
            ) from exc
        return parse_script(data)


class ImagesWork(_AfterScript):
    stage = Stage.IMAGES

    def __init__(self, maker: ImageMaker) -> None:
        self.maker = maker

    async def run(self, ctx: JobContext) -> StageResult:
        script = await self.script(ctx)
        total = len(script.segments)
        artifacts: list[Artifact] = []
        for done, segment in enumerate(script.segments):
            await ctx.progress.report(done, total, f"image {segment.index} of {total}")
            data, content_type, ext = await self.maker.make(script, segment, ctx.event.project_id)
            artifacts.append(
                await ctx.put(f"segment-{segment.index:02d}.{ext}", data, content_type)
            )
        await ctx.progress.report(total, total, f"{total} images")
        return StageResult(
            artifacts=tuple(artifacts),
            message=f"{total} images",
            result={"images": [{"index": i + 1, "uri": a.uri} for i, a in enumerate(artifacts)]},
        )


class AudioWork(_AfterScript):
    """Per-segment WAV with its measured duration (render times the video by it)."""

    stage = Stage.AUDIO

    def __init__(self, engine: SpeechEngine) -> None:
        self.engine = engine

    async def run(self, ctx: JobContext) -> StageResult:
        script = await self.script(ctx)
        total = len(script.segments)
        artifacts: list[Artifact] = []
        timing: list[dict[str, Any]] = []
        for done, segment in enumerate(script.segments):
            await ctx.progress.report(done, total, f"narration {segment.index} of {total}")
            wav = await asyncio.to_thread(
                self.engine.synthesize, segment.narration, segment.duration_seconds
            )
            seconds = round(wav_duration(wav), 3)
            artifact = await ctx.put(f"segment-{segment.index:02d}.wav", wav, "audio/wav")
            artifacts.append(artifact)
            timing.append(
                {"index": segment.index, "uri": artifact.uri, "duration_seconds": seconds}
            )
        await ctx.progress.report(total, total, f"{total} narrations")
        return StageResult(
            artifacts=tuple(artifacts),
            message=f"{total} narrations by {self.engine.name}",
            result={
                "engine": self.engine.name,
                "segments": timing,
                "duration_seconds": round(sum(t["duration_seconds"] for t in timing), 3),
            },
        )


class AvatarsWork(_AfterScript):
    """Presenter clips through D-ID; without a key the stage completes as `skipped`."""

    stage = Stage.AVATARS

    def __init__(self, avatars: Avatars | None) -> None:
        self.avatars = avatars

    async def run(self, ctx: JobContext) -> StageResult:
        if self.avatars is None:
            await ctx.progress.report(1, 1, "no avatar service configured")
            return StageResult(status="skipped", message="avatars skipped: no D-ID key")
        script = await self.script(ctx)
        segment = script.segments[0]  # one presenter clip introduces the video
        await ctx.progress.report(0, 1, "creating the presenter clip")
        data, content_type = await self.avatars.clip(ctx, segment)
        artifact = await ctx.put("presenter.mp4", data, content_type)
        await ctx.progress.report(1, 1, "presenter clip ready")
        return StageResult(
            artifacts=(artifact,),
            message="presenter clip",
            result={"clips": [{"index": segment.index, "uri": artifact.uri}]},
        )

"""The render stage: when a task's images, audio and avatars are all done, make the video
(H.264/AAC MP4, 1280×720, 30 fps, captions, slow zoom, cross-fades, avatar overlay) and its
thumbnail."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ytmaker_render.adapters import ffmpeg, probe
from ytmaker_render.captions import caption_lines, draw_band, draw_blank, draw_thumbnail
from ytmaker_render.encoding import ProgressSample, percent
from ytmaker_render.filtergraph import (
    AvatarClip,
    Caption,
    EncodeOptions,
    SegmentMedia,
    build_command,
)
from ytmaker_render.inputs import RenderInputs, load_inputs
from ytmaker_render.join import fires, relevant
from ytmaker_render.joinstore import JoinStore
from ytmaker_render.timeline import SegmentTiming, Timeline, caption_windows, plan_timeline
from ytmaker_shared.artifacts import ArtifactStore
from ytmaker_shared.events import Event
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import (
    JobContext,
    PermanentError,
    StagePolicy,
    StageResult,
    StageWork,
    TransientError,
)

VIDEO_FILE = "video.mp4"
THUMBNAIL_FILE = "thumbnail.jpg"
#: ffmpeg processes reading the inputs at once before the render, 30–80 MiB each: fifty
#: segments' in 1.2 s (4 at once 1.1 s, one by one 2.0 s; decision 0137).
READS_AT_ONCE = 2

Read = Callable[[str, Path], Awaitable[probe.MediaInfo]]


@dataclass(frozen=True)
class RenderOptions:
    ffmpeg: str
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    fade_seconds: float = 0.5
    pause_seconds: float = 0.35


class RenderWork(StageWork):
    stage = Stage.RENDER
    policy = StagePolicy(max_attempts=2)

    def __init__(self, store: ArtifactStore, options: RenderOptions) -> None:
        self.joins = JoinStore(store)
        self.options = options

    def starts(self, event: Event) -> bool:
        return relevant(event)

    async def admit(self, event: Event) -> bool:
        if not relevant(event):
            return False
        state = await self.joins.fold(event)
        return fires(state, event)

    async def run(self, ctx: JobContext) -> StageResult:
        join = await self.joins.load(ctx.task_id)
        if not join.ready:
            raise PermanentError("join_incomplete", f"assets missing: {sorted(join.missing)}")
        await ctx.progress.report(0, 100, "preparing slides and captions", current_step="prepare")
        inputs = await load_inputs(ctx.store, join, ctx.scratch)
        await _check_readable(self.options.ffmpeg, inputs)
        timeline = plan_timeline(
            [
                SegmentTiming(s.index, s.script_seconds, s.narration_seconds)
                for s in inputs.segments
            ],
            fade=self.options.fade_seconds,
            pause=self.options.pause_seconds,
        )
        media, blank = await asyncio.to_thread(_media, inputs, timeline, ctx.scratch)
        output = ctx.scratch / VIDEO_FILE
        command = build_command(
            self.options.ffmpeg,
            timeline,
            media,
            output,
            avatars=_avatars(inputs, timeline),
            options=self.options.encode,
            blank_caption=blank,
        )
        await asyncio.to_thread(_write, command.files)

        async def on_progress(sample: ProgressSample) -> None:
            done = percent(sample, timeline.total_seconds)
            frames = round(timeline.total_frames * done / 100)
            await ctx.progress.report(
                frames,
                timeline.total_frames,
                f"encoded {min(sample.out_seconds, timeline.total_seconds):.1f}s "
                f"of {timeline.total_seconds:.1f}s",
                current_step="encode",
            )

        ctx.log.info("encoding %.1fs of video", timeline.total_seconds)
        try:
            await ffmpeg.run(
                command.args, feeds=command.pieces, output=output, on_progress=on_progress
            )
        except ffmpeg.FfmpegFailed as exc:
            if exc.signalled:
                raise TransientError("ffmpeg_killed", str(exc)) from exc
            raise PermanentError("ffmpeg_failed", str(exc)[:3000]) from exc
        info = await probe.inspect(self.options.ffmpeg, output)
        if info.first("video") is None or info.first("audio") is None:
            raise PermanentError("render_incomplete", f"the video lacks a stream: {info}")
        first_image = inputs.segments[0].image
        thumbnail = await asyncio.to_thread(
            draw_thumbnail, first_image, inputs.script.title, ctx.scratch / THUMBNAIL_FILE
        )
        video = await ctx.put_file(VIDEO_FILE, output, "video/mp4")
        thumb = await ctx.put_file(THUMBNAIL_FILE, thumbnail, "image/jpeg")
        return StageResult(
            artifacts=(video, thumb),
            message=f"{timeline.total_seconds:.1f}s video, {len(inputs.segments)} segments",
            result=_result(inputs, timeline, video.uri, thumb.uri, info),
        )


async def _check_readable(ffmpeg_path: str, inputs: RenderInputs) -> None:
    """Fail before anything is drawn or encoded when ffmpeg cannot read an input: a slide is
    read only when its slot comes, after the slots before it were encoded (decision 0137).
    Slides are decoded (one frame each); narrations and avatars, which the encoder opens at
    its start and decodes past a damaged frame, are opened."""
    reads: list[tuple[str, Read, Path, str]] = []
    for segment in inputs.segments:
        of = f"of segment {segment.index}"
        reads.append((f"the image {of}", probe.decode, segment.image, "video"))
        if segment.narration is not None:
            reads.append((f"the narration {of}", probe.inspect, segment.narration, "audio"))
    for number, (clip, _) in enumerate(inputs.avatars, 1):
        reads.append((f"avatar clip {number}", probe.inspect, clip, "video"))
    at_once = asyncio.Semaphore(READS_AT_ONCE)

    async def failure(label: str, read: Read, path: Path, kind: str) -> tuple[str, str] | None:
        async with at_once:
            try:
                info = await read(ffmpeg_path, path)
            except probe.ProbeFailed as exc:
                return label, str(exc)
        return None if info.first(kind) else (label, f"{path}: no {kind} stream")

    async with asyncio.TaskGroup() as group:
        checks = [group.create_task(failure(*read)) for read in reads]
    failures = [found for check in checks if (found := check.result()) is not None]
    if failures:
        names = ", ".join(label for label, _ in failures)
        reasons = "\n".join(reason for _, reason in failures)
        raise PermanentError("unreadable_input", f"ffmpeg cannot read {names}: {reasons}"[:3000])


def _media(
    inputs: RenderInputs, timeline: Timeline, scratch: Path
) -> tuple[list[SegmentMedia], Path]:
    """Each segment's caption bands, drawn and timed to its narration, and the blank band
    shown between them (blocking: run it in a thread)."""
    folder = scratch / "captions"
    folder.mkdir(parents=True, exist_ok=True)
    blank = draw_blank(folder / "blank.png")
    slots = {slot.index: slot for slot in timeline.slots}
    media = []
    for segment in inputs.segments:
        lines = caption_lines(segment.narration_text)
        windows = caption_windows(lines, segment.narration_seconds, slots[segment.index].seconds)
        captions = tuple(
            Caption(draw_band(line, folder / f"caption-{segment.index:03d}-{n:02d}.png"), a, b)
            for n, (line, (a, b)) in enumerate(zip(lines, windows, strict=True))
        )
        media.append(SegmentMedia(segment.index, segment.image, captions, segment.narration))
    return media, blank


def _write(files: Mapping[Path, str]) -> None:
    """The command's listings, as the bytes of the paths they name (blocking)."""
    for path, text in files.items():
        path.write_bytes(os.fsencode(text))


def _avatars(inputs: RenderInputs, timeline: Timeline) -> list[AvatarClip]:
    starts = {slot.index: slot.start for slot in timeline.slots}
    return [
        AvatarClip(path, starts.get(index, 0.0) if index is not None else 0.0)
        for path, index in inputs.avatars
    ]


def _result(
    inputs: RenderInputs,
    timeline: Timeline,
    video_uri: str,
    thumbnail_uri: str,
    info: probe.MediaInfo,
) -> dict[str, Any]:
    script = inputs.script
    return {
        "video_uri": video_uri,
        "thumbnail_uri": thumbnail_uri,
        "script_uri": inputs.script_uri,
        "duration_seconds": info.duration_seconds or round(timeline.total_seconds, 3),
        "segments": [
            {"index": s.index, "start": s.start, "seconds": s.seconds} for s in timeline.slots
        ],
        "width": 1280,
        "height": 720,
        "fps": 30,
        "streams": [f"{st.kind}:{st.codec}" for st in info.streams],
        "title": script.title,
        "description": script.description,
        "tags": list(script.tags),
        "language": script.language,
    }

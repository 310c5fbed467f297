"""The video made slot by slot (decision 0130) is, frame for frame, the one graph of every
segment that made it before: the same zoom on every frame of a clip, cut where it may be, the
same captions on them, the same cross-fades."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from ytmaker_render.captions import draw_band, draw_blank
from ytmaker_render.filtergraph import (
    Caption,
    SegmentMedia,
    build_command,
    caption_listing,
    caption_runs,
    zoom_expression,
)
from ytmaker_render.timeline import FPS, HEIGHT, WIDTH, SegmentTiming, Timeline, plan_timeline

FRAME_BYTES = WIDTH * HEIGHT * 3 // 2  # yuv420p


def one_graph(ffmpeg: str, timeline: Timeline, media: list[SegmentMedia], blank: Path) -> list[str]:
    """The video as render made it before decision 0130, without the audio: every clip whole
    in one graph, each under its caption track, chained with `xfade`, raw yuv420p on stdout."""
    inputs: list[str] = []
    graph: list[str] = []
    for position, (slot, segment) in enumerate(zip(timeline.slots, media, strict=True)):
        listing = blank.with_name(f"whole-{segment.index}.ffconcat")
        runs = caption_runs(segment.captions, slot.frames)
        listing.write_text(caption_listing(runs, blank, segment.index))
        image, track = 2 * position, 2 * position + 1
        inputs += ["-i", str(segment.image), "-f", "concat", "-safe", "0", "-i", str(listing)]
        z = zoom_expression(slot.frames, 0.08, zoom_in=position % 2 == 0)
        graph += [
            f"[{image}:v]scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=increase,"
            f"crop={WIDTH}:{HEIGHT},setsar=1,zoompan=z='{z}':x='iw/2-(iw/zoom/2)'"
            f":y='ih/2-(ih/zoom/2)':d={slot.frames}:s={WIDTH}x{HEIGHT}:fps={FPS},"
            f"format=yuv420p[z{position}]",
            f"[{track}:v]format=rgba[k{position}]",
            f"[z{position}][k{position}]overlay=0:main_h-overlay_h:format=auto"
            f":eof_action=repeat,format=yuv420p[v{position}]",
        ]
    video = "v0"
    for position, slot in enumerate(timeline.slots[1:], start=1):
        graph.append(
            f"[{video}][v{position}]xfade=transition=fade:duration={timeline.fade_seconds:.6f}"
            f":offset={slot.start:.6f}[x{position}]"
        )
        video = f"x{position}"
    graph.append(f"[{video}]format=yuv420p[vout]")
    output = ["-map", "[vout]", "-f", "rawvideo", "-"]
    return [ffmpeg, "-v", "error", *inputs, "-filter_complex", ";".join(graph), *output]


def frames(raw: bytes) -> list[str]:
    return [
        hashlib.md5(raw[at : at + FRAME_BYTES]).hexdigest()
        for at in range(0, len(raw), FRAME_BYTES)
    ]


def test_slot_by_slot_the_frames_are_those_of_one_graph(
    ffmpeg: str, media: Any, tmp_path: Path
) -> None:
    # Slides not 16:9 and of other sizes; slots not whole seconds; captions cut by the fades
    sizes = [(1024, 768), (1920, 1080), (800, 1000), (1280, 720)]
    seconds = [2.0, 2.5, 3.1, 2.2]
    timeline = plan_timeline([SegmentTiming(i, s) for i, s in enumerate(seconds)], fade=0.5)
    blank = draw_blank(tmp_path / "blank.png")
    segments = []
    for i, (slot, size) in enumerate(zip(timeline.slots, sizes, strict=True)):
        bands = [draw_band(f"Line {n} of segment {i}", tmp_path / f"c{i}-{n}.png") for n in (0, 1)]
        middle = round(slot.seconds / 2, 3)
        captions = (Caption(bands[0], 0.1, middle), Caption(bands[1], middle, slot.seconds))
        segments.append(
            SegmentMedia(i, media.slide(tmp_path / f"s{i}.png", 50 * i, size), captions)
        )

    cmd = build_command(ffmpeg, timeline, segments, tmp_path / "v.mp4", blank_caption=blank)
    for path, text in cmd.files.items():
        path.write_text(text)
    sliced = b"".join(
        subprocess.run(piece, capture_output=True, check=True).stdout for piece in cmd.pieces
    )
    whole = subprocess.run(one_graph(ffmpeg, timeline, segments, blank), capture_output=True)
    assert whole.returncode == 0, whole.stderr[-500:]

    assert len(frames(whole.stdout)) == timeline.total_frames == 294
    assert frames(sliced) == frames(whole.stdout)

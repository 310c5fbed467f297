"""The ffmpeg command that makes the video: a pure builder, no I/O.

Per segment: the slide, scaled and cropped to 1280×720, slowly zooms (in on even segments,
out on odd ones) for its whole clip; its captions (lines of the narration, transparent PNG
bands, each shown in its time window) are overlaid at the bottom of the clip, so that they
cross-fade with their slide. A segment's captions are one input and one overlay however many
lines it has (docs/decisions/0125): a caption track, ffmpeg's concat demuxer reading a listing
of the bands with how many frames each is shown (`caption_runs`, `caption_listing`), a
transparent band where none is. The clips are chained with `xfade`, each
transition starting where the next narration starts (see timeline.py). Narrations are padded
to their slot and concatenated; a segment without narration gets silence. Avatar clips, when
present, are overlaid in the top-right corner from their start time until they end.
Output: H.264 (yuv420p) and AAC in MP4, 30 fps, `+faststart`, progress on stdout.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ytmaker_render.timeline import FPS, HEIGHT, WIDTH, Slot, Timeline


@dataclass(frozen=True)
class Caption:
    """A WIDTH-wide RGBA PNG band shown at the bottom from `start` to `end` seconds of its
    segment's clip: on the frames whose time is in [start, end] (see `caption_runs`)."""

    path: Path
    start: float
    end: float


@dataclass(frozen=True)
class SegmentMedia:
    """The files of one segment."""

    index: int
    image: Path
    captions: tuple[Caption, ...] = ()
    narration: Path | None = None


@dataclass(frozen=True)
class AvatarClip:
    """A presenter clip shown in the corner from `start` seconds until it ends."""

    path: Path
    start: float = 0.0


@dataclass(frozen=True)
class EncodeOptions:
    preset: str = "veryfast"
    crf: int = 23
    audio_bitrate: str = "128k"
    sample_rate: int = 44100
    zoom: float = 0.08
    #: Zoom on an image this many times the output size: smoother motion, more CPU.
    supersample: float = 1.0
    avatar_width: int = WIDTH // 4
    threads: int = 0


@dataclass(frozen=True)
class FfmpegCommand:
    args: list[str]
    filtergraph: str
    output: Path
    duration_seconds: float
    #: Text files the command reads (the caption tracks' concat listings, beside `output`):
    #: write them before running it.
    files: dict[Path, str] = field(default_factory=dict)


class _Inputs:
    """ffmpeg's `-i` list, numbering inputs as they are added."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.count = 0

    def add(self, path: Path, *options: str) -> int:
        self.args += [*options, "-i", str(path)]
        self.count += 1
        return self.count - 1


def build_command(
    ffmpeg: str,
    timeline: Timeline,
    media: Sequence[SegmentMedia],
    output: Path,
    *,
    avatars: Sequence[AvatarClip] = (),
    options: EncodeOptions = EncodeOptions(),
    blank_caption: Path | None = None,
) -> FfmpegCommand:
    """The full argument list for `ffmpeg`, and the caption listings to write beside `output`.
    `blank_caption`: a fully transparent PNG of the captions' size, shown on the frames of a
    captioned clip that no caption covers. Raises ValueError when the media do not match the
    timeline's segments one to one, or when such frames exist and there is no blank."""
    by_index = {m.index: m for m in media}
    if sorted(by_index) != sorted(s.index for s in timeline.slots) or len(media) != len(by_index):
        raise ValueError(
            f"segments {sorted(s.index for s in timeline.slots)} need one media entry each, "
            f"got {sorted(m.index for m in media)}"
        )
    inputs = _Inputs()
    graph: list[str] = []
    clips: list[str] = []
    narrations: list[str] = []
    files: dict[Path, str] = {}
    for position, slot in enumerate(timeline.slots):
        segment = by_index[slot.index]
        clip = _slide(graph, inputs, segment, slot, position, options)
        if segment.captions:
            listing = output.with_name(f"{output.stem}-captions-{slot.index:03d}.ffconcat")
            files[listing] = caption_listing(
                caption_runs(segment.captions, slot.frames), blank_caption, slot.index
            )
            clip = _captions(graph, inputs, listing, clip, position)
        clips.append(clip)
        narrations.append(_narration(graph, inputs, segment, slot, options))
    video = _crossfade(graph, clips, timeline)
    for number, avatar in enumerate(avatars):
        video = _avatar(graph, inputs, avatar, video, number, options)
    graph.append(f"[{video}]format=yuv420p[vout]")
    graph.append(f"{''.join(f'[{a}]' for a in narrations)}concat=n={len(narrations)}:v=0:a=1[aout]")
    filtergraph = ";".join(graph)
    total = f"{timeline.total_seconds:.3f}"
    args = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-y",
        *inputs.args,
        "-filter_complex",
        filtergraph,
        "-map",
        "[vout]",
        "-map",
        "[aout]",
        "-c:v",
        "libx264",
        "-preset",
        options.preset,
        "-crf",
        str(options.crf),
        "-pix_fmt",
        "yuv420p",
        "-r",
        str(FPS),
        "-c:a",
        "aac",
        "-b:a",
        options.audio_bitrate,
        "-ar",
        str(options.sample_rate),
        "-threads",
        str(options.threads),
        "-t",
        total,
        "-movflags",
        "+faststart",
        "-progress",
        "pipe:1",
        "-f",
        "mp4",
        str(output),
    ]
    return FfmpegCommand(args, filtergraph, output, timeline.total_seconds, files)


def zoom_expression(frames: int, zoom: float, *, zoom_in: bool) -> str:
    """zoompan's `z`: from 1 to 1+zoom over `frames` (or back), linear in the frame number."""
    span = max(1, frames - 1)
    if zoom_in:
        return f"1+{zoom:g}*on/{span}"
    return f"{1 + zoom:g}-{zoom:g}*on/{span}"


def _slide(
    graph: list[str],
    inputs: _Inputs,
    segment: SegmentMedia,
    slot: Slot,
    position: int,
    options: EncodeOptions,
) -> str:
    image = inputs.add(segment.image)
    w = _even(WIDTH * options.supersample)
    h = _even(HEIGHT * options.supersample)
    z = zoom_expression(slot.frames, options.zoom, zoom_in=position % 2 == 0)
    zoomed = f"z{position}"
    graph.append(
        f"[{image}:v]scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1,"
        f"zoompan=z='{z}':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)'"
        f":d={slot.frames}:s={WIDTH}x{HEIGHT}:fps={FPS},format=yuv420p[{zoomed}]"
    )
    return zoomed


def _captions(graph: list[str], inputs: _Inputs, listing: Path, clip: str, position: int) -> str:
    """The segment's caption track over its clip: one input, one overlay. The overlay shows,
    on each frame of the clip, the track's latest frame at or before it (the band of that
    run); the bands stay RGBA up to the overlay, which blends them by their alpha."""
    track = inputs.add(listing, "-f", "concat", "-safe", "0")
    bands = f"k{position}"
    captioned = f"v{position}"
    graph.append(f"[{track}:v]format=rgba[{bands}]")
    graph.append(
        f"[{clip}][{bands}]overlay=0:main_h-overlay_h:format=auto:eof_action=repeat,"
        f"format=yuv420p[{captioned}]"
    )
    return captioned


_FRAME = 1 / FPS  # a frame's time is its number times this, as ffmpeg's `t` is


def caption_runs(captions: Sequence[Caption], frames: int) -> list[tuple[Path | None, int]]:
    """What each of a clip's `frames` frames shows in the caption band, as runs of
    (band, frames) in order; None where no caption is.

    Frame n shows a caption when start <= n/FPS <= end, computed as ffmpeg computes `t`: the
    frames an overlay per caption with `enable='between(t,start,end)'` (render before
    decision 0125) showed it on. Where captions overlap, the frame shows the later one in
    `captions`, the one such overlays drew on top; a caption shorter than a frame may be shown
    on none.
    """
    shown: list[Path | None] = [None] * frames
    for caption in captions:
        first = max(0, math.ceil(caption.start * FPS) - 1)
        while first * _FRAME < caption.start:
            first += 1
        last = math.floor(caption.end * FPS) + 1
        while last >= 0 and last * _FRAME > caption.end:
            last -= 1
        last = min(last, frames - 1)
        if first <= last:
            shown[first : last + 1] = [caption.path] * (last + 1 - first)
    return [(band, len(list(run))) for band, run in itertools.groupby(shown)]


def caption_listing(runs: Sequence[tuple[Path | None, int]], blank: Path | None, index: int) -> str:
    """An ffconcat listing of `runs` (see `caption_runs`): each band for its frames, `blank`
    for None. Raises ValueError when `blank` is needed and None, or for a path with a line
    break (a listing is read line by line).

    Each file is read at FPS (`option framerate`: at the PNG demuxer's default 25 fps the
    start times would be rounded to 40 ms) and starts on a whole microsecond, so its one frame
    lands exactly on its first frame. The concat demuxer does not hold the last file for its
    `duration` (the track ends one frame after it starts); the overlay's `eof_action=repeat`
    does, to the end of the clip. The usual cure, listing the last file again, is wrong here:
    its frame, at the clip's end, would make the overlay add a frame to the clip.
    """
    entries: list[tuple[Path, int]] = []
    for band, count in runs:
        if band is None:
            if blank is None:
                raise ValueError(f"segment {index}: frames without a caption need a blank band")
            band = blank
        entries.append((band, count))
    lines = ["ffconcat version 1.0"]
    frame = 0
    for band, count in entries:
        microseconds = _microseconds(frame + count) - _microseconds(frame)
        frame += count
        lines += _listed(band)
        lines.append(f"duration {microseconds // 1_000_000}.{microseconds % 1_000_000:06d}")
    return "\n".join(lines) + "\n"


def _microseconds(frame: int) -> int:
    return round(frame * 1_000_000 / FPS)


def _listed(band: Path) -> list[str]:
    """A file entry: the path as a `file:` URL (a `:` in it names no protocol), quoted."""
    url = f"file:{band}"
    if "\n" in url or "\r" in url:
        raise ValueError(f"a caption band's path cannot hold a line break: {band!r}")
    quoted = url.replace("'", "'\\''")
    return [f"file '{quoted}'", f"option framerate {FPS}"]


def _narration(
    graph: list[str],
    inputs: _Inputs,
    segment: SegmentMedia,
    slot: Slot,
    options: EncodeOptions,
) -> str:
    label = f"a{slot.index}"
    seconds = f"{slot.seconds:.6f}"
    layout = f"sample_fmts=fltp:sample_rates={options.sample_rate}:channel_layouts=stereo"
    if segment.narration is None:
        graph.append(
            f"anullsrc=r={options.sample_rate}:cl=stereo,atrim=duration={seconds},"
            f"aformat={layout}[{label}]"
        )
    else:
        audio = inputs.add(segment.narration)
        graph.append(
            f"[{audio}:a]aformat={layout},apad=whole_dur={seconds},atrim=duration={seconds},"
            f"asetpts=PTS-STARTPTS[{label}]"
        )
    return label


def _crossfade(graph: list[str], clips: list[str], timeline: Timeline) -> str:
    if timeline.fade_seconds <= 0 or len(clips) == 1:
        if len(clips) == 1:
            return clips[0]
        graph.append(f"{''.join(f'[{c}]' for c in clips)}concat=n={len(clips)}:v=1:a=0[xall]")
        return "xall"
    current = clips[0]
    for position in range(1, len(clips)):
        label = f"x{position}"
        offset = timeline.slots[position].start
        graph.append(
            f"[{current}][{clips[position]}]xfade=transition=fade"
            f":duration={timeline.fade_seconds:.6f}:offset={offset:.6f}[{label}]"
        )
        current = label
    return current


def _avatar(
    graph: list[str],
    inputs: _Inputs,
    avatar: AvatarClip,
    video: str,
    number: int,
    options: EncodeOptions,
) -> str:
    clip = inputs.add(avatar.path)
    scaled = f"av{number}"
    out = f"vav{number}"
    graph.append(
        f"[{clip}:v]scale={_even(options.avatar_width)}:-2,fps={FPS},"
        f"setpts=PTS-STARTPTS+{avatar.start:.6f}/TB[{scaled}]"
    )
    graph.append(
        f"[{video}][{scaled}]overlay=main_w-overlay_w-24:24:eof_action=pass:format=auto[{out}]"
    )
    return out


def _even(value: float) -> int:
    return int(round(value / 2) * 2)

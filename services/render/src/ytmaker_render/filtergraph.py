"""The ffmpeg commands that make the video: a pure builder, no I/O.

Per segment: the slide, scaled and cropped to 1280×720, slowly zooms (in on even segments,
out on odd ones) for its whole clip; its captions (lines of the narration, transparent PNG
bands, each shown in its time window) are overlaid at the bottom of the clip, so that they
cross-fade with their slide. A segment's captions are one input and one overlay however many
lines it has (docs/decisions/0125): a caption track, ffmpeg's concat demuxer reading a listing
of the bands with how many frames each is shown (`caption_runs`, `caption_listing`), a
transparent band where none is. Each clip fades into the next (`xfade`), the transition
starting where the next narration starts (see timeline.py). Narrations are padded to their
slot and concatenated; a segment without narration gets silence. Avatar clips, when present,
are overlaid in the top-right corner from their start time until they end.
Output: H.264 (yuv420p) and AAC in MP4, 30 fps, `+faststart`, progress on stdout.

The frames are made one slot at a time (docs/decisions/0130). One graph of every segment
kept each clip's buffers until the end, 1.6 GiB of ffmpeg for fifty segments; now one ffmpeg
per slot (`FfmpegCommand.pieces`, run one after another) writes the slot's raw frames, the
fade out of the previous clip's last frames and then its own clip, to the standard input of
one encoder (`FfmpegCommand.args`), which adds the avatars and the narration. Each frame is
computed as the one graph computed it: a clip's frames from `first` on are zoomed as they were
in the whole clip (`zoom_expression`), its captions are the part of its track on those frames
(`runs_between`), and they go through the pixel formats they went through there
(`frame_format`).
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
    """The encoder (`args`, its graph `filtergraph`) and the commands that give it its frames."""

    args: list[str]
    filtergraph: str
    output: Path
    duration_seconds: float
    #: Text files the commands read (the caption tracks' concat listings, beside `output`):
    #: write them before running them.
    files: dict[Path, str] = field(default_factory=dict)
    #: One command per slot, in order, each writing the slot's frames, raw, on its standard
    #: output: run them one after another into the encoder's standard input.
    pieces: list[list[str]] = field(default_factory=list)


class _Inputs:
    """ffmpeg's `-i` list, numbering inputs as they are added."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.count = 0

    def add(self, source: Path | str, *options: str) -> int:
        self.args += [*options, "-i", str(source)]
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
    """The encoder's arguments, the pieces that feed it, and the caption listings to write
    beside `output`. `blank_caption`: a fully transparent PNG of the captions' size, shown on
    the frames of a captioned clip that no caption covers. Raises ValueError when the media do
    not match the timeline's segments one to one, or when such frames exist and there is no
    blank."""
    by_index = {m.index: m for m in media}
    if sorted(by_index) != sorted(s.index for s in timeline.slots) or len(media) != len(by_index):
        raise ValueError(
            f"segments {sorted(s.index for s in timeline.slots)} need one media entry each, "
            f"got {sorted(m.index for m in media)}"
        )
    files: dict[Path, str] = {}
    pixels = frame_format(timeline, avatars=bool(avatars))
    pieces = [
        _piece(
            ffmpeg,
            timeline,
            position,
            by_index,
            pixels,
            _Clips(output, options, blank_caption, files),
        )
        for position in range(len(timeline.slots))
    ]
    inputs = _Inputs()
    raw = inputs.add(
        "pipe:0",
        *("-f", "rawvideo", "-pix_fmt", pixels),
        *("-video_size", f"{WIDTH}x{HEIGHT}", "-framerate", str(FPS)),
    )
    before_avatars = "setsar=1"
    if avatars:  # overlaid in the frames' format with an alpha plane, as the one graph did
        before_avatars += f",format={_WITH_ALPHA[pixels]}"
    graph = [f"[{raw}:v]{before_avatars}[video]"]
    narrations = [
        _narration(graph, inputs, by_index[slot.index], slot, options) for slot in timeline.slots
    ]
    video = "video"
    for number, avatar in enumerate(avatars):
        video = _avatar(graph, inputs, avatar, video, number, options)
    graph.append(f"[{video}]format=yuv420p[vout]")
    graph.append(f"{''.join(f'[{a}]' for a in narrations)}concat=n={len(narrations)}:v=0:a=1[aout]")
    filtergraph = ";".join(graph)
    total = f"{timeline.total_seconds:.3f}"
    args = [
        ffmpeg,
        *_QUIET,
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
    return FfmpegCommand(args, filtergraph, output, timeline.total_seconds, files, pieces)


def frame_format(timeline: Timeline, *, avatars: bool) -> str:
    """The pixel format the pieces write their frames in: the one the one graph's video was
    in where the encoder's work begins. Its cross-fades ran in yuv444p (ffmpeg's choice for
    `xfade`) and its avatars were overlaid on them in it; without avatars the pieces finish
    the yuv420p the video is encoded in."""
    return "yuv444p" if avatars and _fades(timeline) else "yuv420p"


_WITH_ALPHA = {"yuv420p": "yuva420p", "yuv444p": "yuva444p"}
#: Every ffmpeg here: no banner, no reading of the terminal, errors only on stderr.
_QUIET = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]


def _fades(timeline: Timeline) -> bool:
    return timeline.fade_seconds > 0 and len(timeline.slots) > 1


def _piece(
    ffmpeg: str,
    timeline: Timeline,
    position: int,
    by_index: dict[int, SegmentMedia],
    pixels: str,
    clips: _Clips,
) -> list[str]:
    """The command that writes the frames of slot `position`, raw, in `pixels`, on its
    standard output: the fade from the previous clip's last frames into this clip, then the
    rest of the slot. A clip's last frames are the next slot's; the last clip has none after
    its slot. Where clips fade, every frame goes through yuv444p, as the whole video went
    through the one graph's `xfade` chain."""
    slot = timeline.slots[position]
    own = round(slot.seconds * FPS)
    if not _fades(timeline):
        video = clips.add(by_index[slot.index], slot, position, 0, own)
    elif position == 0:
        video = clips.add(by_index[slot.index], slot, position, 0, own)
        clips.graph.append(f"[{video}]format=yuv444p[faded]")
        video = "faded"
    else:
        previous = timeline.slots[position - 1]
        fade = round(timeline.fade_seconds * FPS)
        ending = clips.add(
            by_index[previous.index], previous, position - 1, previous.frames - fade, fade
        )
        starting = clips.add(by_index[slot.index], slot, position, 0, own)
        clips.graph.append(
            f"[{ending}]format=yuv444p[a];[{starting}]format=yuv444p[b];"
            f"[a][b]xfade=transition=fade:duration={timeline.fade_seconds:.6f}:offset=0[faded]"
        )
        video = "faded"
    clips.graph.append(f"[{video}]format={pixels}[frames]")
    return [
        ffmpeg,
        *_QUIET,
        *clips.inputs.args,
        "-filter_complex",
        ";".join(clips.graph),
        "-map",
        "[frames]",
        "-f",
        "rawvideo",
        "pipe:1",
    ]


class _Clips:
    """The clips of one piece, as inputs and filters of its graph; their caption listings go
    to `files`."""

    def __init__(
        self, output: Path, options: EncodeOptions, blank: Path | None, files: dict[Path, str]
    ) -> None:
        self.output = output
        self.options = options
        self.blank = blank
        self.files = files
        self.inputs = _Inputs()
        self.graph: list[str] = []
        self.count = 0

    def add(self, segment: SegmentMedia, slot: Slot, position: int, first: int, count: int) -> str:
        """Frames `first` to `first + count - 1` of the segment's clip, as in the whole clip:
        the slide zoomed as on those frames, under the part of the caption track on them."""
        part = self.count
        self.count += 1
        image = self.inputs.add(segment.image)
        w = _even(WIDTH * self.options.supersample)
        h = _even(HEIGHT * self.options.supersample)
        z = zoom_expression(slot.frames, self.options.zoom, zoom_in=position % 2 == 0, first=first)
        zoomed = f"z{part}"
        self.graph.append(
            f"[{image}:v]scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1,"
            f"zoompan=z='{z}':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)'"
            f":d={count}:s={WIDTH}x{HEIGHT}:fps={FPS},format=yuv420p[{zoomed}]"
        )
        if not segment.captions:
            return zoomed
        listing = self.output.with_name(
            f"{self.output.stem}-captions-{segment.index:03d}-{first:04d}.ffconcat"
        )
        runs = caption_runs(segment.captions, slot.frames)
        self.files[listing] = caption_listing(
            runs_between(runs, first, count), self.blank, segment.index
        )
        return self._captions(listing, zoomed, part)

    def _captions(self, listing: Path, clip: str, part: int) -> str:
        """The caption track over the clip: one input, one overlay. The overlay shows, on each
        frame of the clip, the track's latest frame at or before it (the band of that run);
        the bands stay RGBA up to the overlay, which blends them by their alpha."""
        track = self.inputs.add(listing, "-f", "concat", "-safe", "0")
        bands = f"k{part}"
        captioned = f"v{part}"
        self.graph.append(f"[{track}:v]format=rgba[{bands}]")
        self.graph.append(
            f"[{clip}][{bands}]overlay=0:main_h-overlay_h:format=auto:eof_action=repeat,"
            f"format=yuv420p[{captioned}]"
        )
        return captioned


def zoom_expression(frames: int, zoom: float, *, zoom_in: bool, first: int = 0) -> str:
    """zoompan's `z`: from 1 to 1+zoom over a clip's `frames` (or back), linear in the frame
    number. `first`: the clip's frame the zoompan starts on (its `on` counts from there); each
    frame gets the value, bit for bit, it has in a zoompan of the whole clip."""
    span = max(1, frames - 1)
    frame = f"(on+{first})" if first else "on"
    if zoom_in:
        return f"1+{zoom:g}*{frame}/{span}"
    return f"{1 + zoom:g}-{zoom:g}*{frame}/{span}"


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


def runs_between(
    runs: Sequence[tuple[Path | None, int]], first: int, count: int
) -> list[tuple[Path | None, int]]:
    """The part of `runs` (see `caption_runs`) on frames `first` to `first + count - 1`."""
    part: list[tuple[Path | None, int]] = []
    start = 0
    for band, length in runs:
        shown = min(start + length, first + count) - max(start, first)
        if shown > 0:
            part.append((band, shown))
        start += length
    return part


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

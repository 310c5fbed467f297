"""What a media file holds, read with ffmpeg itself (the static build ships no ffprobe).

`inspect` reads the container header (`ffmpeg -i file`): duration and streams, instantly.
`decode` decodes every frame to nowhere (`ffmpeg -i file -f null -`): the proof that a file is
playable end to end, and the decoded length.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stream:
    kind: str  # "video" or "audio"
    codec: str
    detail: str  # the rest of ffmpeg's stream line

    @property
    def size(self) -> tuple[int, int] | None:
        match = re.search(r"\b(\d{2,5})x(\d{2,5})\b", self.detail)
        return (int(match.group(1)), int(match.group(2))) if match else None

    @property
    def fps(self) -> float | None:
        match = re.search(r"([\d.]+) fps", self.detail)
        return float(match.group(1)) if match else None

    @property
    def sample_rate(self) -> int | None:
        match = re.search(r"(\d+) Hz", self.detail)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class MediaInfo:
    duration_seconds: float | None
    streams: tuple[Stream, ...]
    decoded_seconds: float | None = None
    decoded_frames: int | None = None

    def first(self, kind: str) -> Stream | None:
        return next((s for s in self.streams if s.kind == kind), None)


class ProbeFailed(RuntimeError):
    pass


_STREAM = re.compile(r"Stream #\d+:\d+(?:\[\w+\])?(?:\(\w+\))?: (Video|Audio): (\w+)(.*)")
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_TIME = re.compile(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)")
_FRAME = re.compile(r"frame=\s*(\d+)")


def parse(stderr: str) -> MediaInfo:
    """Duration, streams and (after a decode) the last `time=`/`frame=` from ffmpeg's stderr."""
    input_part = stderr.split("Stream mapping:")[0]
    duration = _DURATION.search(input_part)
    streams = tuple(
        Stream(kind.lower(), codec, rest.strip())
        for kind, codec, rest in _STREAM.findall(input_part)
    )
    times = _TIME.findall(stderr)
    frames = _FRAME.findall(stderr)
    return MediaInfo(
        duration_seconds=_seconds(duration.groups()) if duration else None,
        streams=streams,
        decoded_seconds=_seconds(times[-1]) if times else None,
        decoded_frames=int(frames[-1]) if frames else None,
    )


async def inspect(ffmpeg: str, path: Path) -> MediaInfo:
    """Header only; raises ProbeFailed when ffmpeg cannot open the file."""
    stderr, _ = await _ffmpeg(ffmpeg, "-hide_banner", "-nostdin", "-i", str(path))
    info = parse(stderr)
    if not info.streams:
        raise ProbeFailed(f"{path}: no streams: {stderr[-500:]}")
    return info


async def decode(ffmpeg: str, path: Path) -> MediaInfo:
    """Decode everything; raises ProbeFailed on any decoding error."""
    stderr, code = await _ffmpeg(
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-v",
        "info",
        "-xerror",
        "-i",
        str(path),
        "-f",
        "null",
        "-",
    )
    if code != 0:
        raise ProbeFailed(f"{path}: decoding failed ({code}): {stderr[-800:]}")
    return parse(stderr)


async def _ffmpeg(ffmpeg: str, *args: str) -> tuple[str, int]:
    process = await asyncio.create_subprocess_exec(
        ffmpeg, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, err = await process.communicate()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return err.decode(errors="replace").replace("\r", "\n"), process.returncode or 0


def _seconds(parts: tuple[str, ...]) -> float:
    hours, minutes, seconds = parts
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def top_level_boxes(path: Path, limit: int = 16) -> list[str]:
    """The MP4's top-level box types in file order (`ftyp`, `moov`, `mdat`, ...)."""
    boxes: list[str] = []
    with path.open("rb") as file:
        while len(boxes) < limit:
            header = file.read(8)
            if len(header) < 8:
                break
            size = int.from_bytes(header[:4], "big")
            boxes.append(header[4:8].decode("latin-1"))
            if size == 1:
                size = int.from_bytes(file.read(8), "big") - 8
            elif size == 0:
                break
            file.seek(size - 8, 1)
    return boxes


def is_faststart(path: Path) -> bool:
    """Whether the index (`moov`) comes before the media data (`mdat`): playable while loading."""
    boxes = top_level_boxes(path)
    return "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")

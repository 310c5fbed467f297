"""ffmpeg's `-progress pipe:1` output, parsed into honest sub-progress.

ffmpeg writes blocks of `key=value` lines, each block closed by `progress=continue` or, at
the very end, `progress=end`. The encoded position is `out_time_us` (microseconds; older
builds also write the same figure, wrongly named, as `out_time_ms`, and `N/A` before the first
frame). Progress is that position against the expected duration, held below 100 until
`progress=end` so that a rounding of the last frame never reports a finished video early.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressSample:
    """One closed block of ffmpeg's progress output."""

    out_seconds: float
    frame: int
    speed: float | None
    ended: bool


class ProgressParser:
    """Feed it lines; it returns a sample whenever a block closes. Unknown keys are ignored,
    malformed lines are skipped: a progress line never breaks a render."""

    def __init__(self) -> None:
        self._block: dict[str, str] = {}

    def feed(self, line: str) -> ProgressSample | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        self._block[key.strip()] = value.strip()
        if key != "progress":
            return None
        block, self._block = self._block, {}
        return ProgressSample(
            out_seconds=_out_seconds(block),
            frame=_int(block.get("frame")),
            speed=_speed(block.get("speed")),
            ended=value.strip() == "end",
        )


def percent(sample: ProgressSample, total_seconds: float, *, ceiling: float = 99.0) -> float:
    """The share of the video encoded, 0–100; at most `ceiling` until ffmpeg said `end`."""
    if sample.ended:
        return 100.0
    if total_seconds <= 0:
        return 0.0
    return round(min(ceiling, max(0.0, 100.0 * sample.out_seconds / total_seconds)), 2)


def _out_seconds(block: dict[str, str]) -> float:
    for key in ("out_time_us", "out_time_ms"):
        raw = block.get(key, "")
        if raw.lstrip("-").isdigit():
            return max(0, int(raw)) / 1_000_000
    return _clock(block.get("out_time", ""))


def _clock(raw: str) -> float:
    """`HH:MM:SS.micro` → seconds; 0 for anything else."""
    parts = raw.split(":")
    if len(parts) != 3:
        return 0.0
    try:
        hours, minutes, seconds = int(parts[0]), int(parts[1]), float(parts[2])
    except ValueError:
        return 0.0
    return max(0.0, hours * 3600 + minutes * 60 + seconds)


def _int(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _speed(raw: str | None) -> float | None:
    if not raw or not raw.endswith("x"):
        return None
    try:
        return float(raw[:-1])
    except ValueError:
        return None

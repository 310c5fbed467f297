"""When each segment is on screen: pure timing from the narration's measured durations.

The narration drives the video: a segment lasts as long as its WAV plus a
short pause, never less than `min_seconds`; where a segment has no narration the script's
own duration is used. Slides cross-fade into each other; to keep pictures and narration in
step, every clip but the last is `fade` longer than its slot, and the cross-fade into segment
k+1 starts exactly when segment k+1's narration starts (see `Slot.clip_seconds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FPS = 30
WIDTH = 1280
HEIGHT = 720


@dataclass(frozen=True)
class SegmentTiming:
    """What is known about one segment before rendering."""

    index: int
    script_seconds: float
    narration_seconds: float | None = None


@dataclass(frozen=True)
class Slot:
    """One segment's place in the video. `start` and `seconds` are in the output timeline;
    `clip_seconds` is the length of its video clip before the cross-fades overlap it."""

    index: int
    start: float
    seconds: float
    clip_seconds: float

    @property
    def end(self) -> float:
        return self.start + self.seconds

    @property
    def frames(self) -> int:
        return frames(self.clip_seconds)


@dataclass(frozen=True)
class Timeline:
    slots: tuple[Slot, ...]
    fade_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.slots[-1].end if self.slots else 0.0

    @property
    def total_frames(self) -> int:
        return frames(self.total_seconds)


def frames(seconds: float) -> int:
    return max(1, round(seconds * FPS))


def segment_seconds(segment: SegmentTiming, *, pause: float, min_seconds: float) -> float:
    """How long one segment stays on screen, rounded to whole frames."""
    if segment.narration_seconds is not None and segment.narration_seconds > 0:
        seconds = segment.narration_seconds + pause
    else:
        seconds = segment.script_seconds
    return frames(max(seconds, min_seconds)) / FPS


def plan_timeline(
    segments: Sequence[SegmentTiming],
    *,
    fade: float = 0.5,
    pause: float = 0.35,
    min_seconds: float = 2.0,
) -> Timeline:
    """Place the segments one after another. Raises ValueError for no segments, or for a fade
    that is not shorter than `min_seconds` (a cross-fade must fit inside every slot)."""
    if not segments:
        raise ValueError("a video needs at least one segment")
    if not 0 <= fade < min_seconds:
        raise ValueError(f"fade {fade}s must be >= 0 and shorter than min_seconds {min_seconds}s")
    fade = frames(fade) / FPS if fade > 0 else 0.0
    slots: list[Slot] = []
    start = 0.0
    ordered = sorted(segments, key=lambda s: s.index)
    for position, segment in enumerate(ordered):
        seconds = segment_seconds(segment, pause=pause, min_seconds=min_seconds)
        last = position == len(ordered) - 1
        clip = seconds if last else seconds + fade
        slots.append(Slot(segment.index, round(start, 6), seconds, round(clip, 6)))
        start += seconds
    return Timeline(tuple(slots), fade)


def caption_windows(
    lines: Sequence[str], narration_seconds: float | None, slot_seconds: float
) -> list[tuple[float, float]]:
    """When each caption line of a segment is on screen, relative to the segment's start.

    The lines follow the narration: each gets a share of the narration's length proportional
    to its characters (speech time is roughly proportional to text length); the last one stays
    until the segment ends. Without a narration the lines share the whole slot.
    """
    if not lines:
        return []
    spoken = narration_seconds if narration_seconds and narration_seconds > 0 else slot_seconds
    spoken = min(spoken, slot_seconds)
    weights = [max(1, len(line)) for line in lines]
    total = sum(weights)
    windows: list[tuple[float, float]] = []
    start = 0.0
    for position, weight in enumerate(weights):
        end = slot_seconds if position == len(lines) - 1 else start + spoken * weight / total
        windows.append((round(start, 3), round(end, 3)))
        start = end
    return windows

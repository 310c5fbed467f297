"""Recent stage durations over a hopping window (pure; docs/decisions/0024-eta-window.md).

The window is `size_s` long (an hour) and hops by `step_s` (a minute): durations are summed
per stage in buckets of `step_s` by the time the attempt finished, and the average of a stage
is over the buckets that the window ending at the watermark covers. Time is event time (the
`finished_at` the fold recorded), so a replay gives the same averages as the live run; the
watermark is the latest time seen. Memory: `size_s / step_s` buckets per stage.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime


class StageWindow:
    """`add` finished attempts, read `averages()`; the caller adds each attempt once."""

    def __init__(self, size_s: float = 3600.0, step_s: float = 60.0) -> None:
        if step_s <= 0 or size_s < step_s:
            raise ValueError("a window needs 0 < step_s <= size_s")
        self.size_s = size_s
        self.step_s = step_s
        self.watermark = float("-inf")
        # stage → bucket number → [sum of seconds, count]
        self._buckets: dict[str, dict[int, list[float]]] = defaultdict(dict)
        self._averages: dict[str, float] | None = None  # cached until the buckets change

    def advance(self, now: datetime) -> None:
        """Move the watermark to `now` if later, dropping the buckets it leaves behind."""
        self.watermark = max(self.watermark, now.timestamp())
        oldest = self._bucket(self.watermark - self.size_s) + 1
        for buckets in self._buckets.values():
            for number in [n for n in buckets if n < oldest]:
                del buckets[number]
                self._averages = None

    def add(self, stage: str, finished_at: datetime, seconds: float) -> None:
        """One finished attempt of `stage` that took `seconds`; older than the window: ignored."""
        at = finished_at.timestamp()
        if seconds < 0 or at <= self.watermark - self.size_s:
            return
        bucket = self._buckets[stage].setdefault(self._bucket(at), [0.0, 0])
        bucket[0] += seconds
        bucket[1] += 1
        self._averages = None
        self.advance(finished_at)

    def averages(self) -> dict[str, float]:
        """Average seconds per stage over the window; stages without a sample are absent."""
        if self._averages is not None:
            return self._averages
        out: dict[str, float] = {}
        for stage, buckets in self._buckets.items():
            total = sum(b[0] for b in buckets.values())
            count = sum(b[1] for b in buckets.values())
            if count:
                out[stage] = total / count
        self._averages = out
        return out

    def _bucket(self, at: float) -> int:
        return int(at // self.step_s)

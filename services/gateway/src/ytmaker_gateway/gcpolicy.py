"""The garbage collector's schedule in a latency-sensitive process (decision 0033).

Python's full collections scan every tracked object; with a thousand clients connected that is
hundreds of thousands of objects and pauses of 100 ms and more, which is a p99 by itself. So the
objects that stay (start-up, then connected clients) are moved out of the collector's reach
(`gc.freeze()`) soon after they appear, and the automatic collections only ever scan what is
recent. What is frozen and later becomes a garbage *cycle* would stay; one full collection of
everything every `full_every_s` reclaims it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)


def start_up(threshold: int = 0) -> None:
    """Collect once and freeze what the start-up left; `threshold` > 0 sets the young
    generation's threshold (0 keeps Python's)."""
    gc.collect()
    gc.freeze()
    if threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)


def refreeze() -> None:
    """Collect the young generations (a few thousand objects at most: short), then freeze
    everything alive. The old generation is not scanned here: after a burst of connections
    that alone would be a pause of 100 ms and more; its garbage cycles, if any, wait for the
    next `full_collection()`."""
    gc.collect(1)
    gc.freeze()


def full_collection() -> float:
    """Unfreeze, collect everything, freeze again; returns the seconds it took."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - started


async def run(interval_s: float, full_every_s: float, stopping: asyncio.Event) -> None:
    """`refreeze()` every `interval_s` and `full_collection()` every `full_every_s` (0: never)
    until `stopping` is set."""
    last_full = time.monotonic()
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), interval_s)
        except TimeoutError:
            if full_every_s > 0 and time.monotonic() - last_full >= full_every_s:
                took = full_collection()
                last_full = time.monotonic()
                log.info("full garbage collection", extra={"seconds": round(took, 4)})
            else:
                refreeze()

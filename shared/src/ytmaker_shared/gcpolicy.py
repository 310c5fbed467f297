"""The garbage collector's schedule of every long-running process (decisions 0033, 0044, 0106).

Python's full collections scan every tracked object: a thousand clients' connections in the
gateway, every task's recent history in the read side. That is hundreds of thousands to
millions of objects, pauses of 100 ms and more (a p99 by itself) and, in the read side, a tenth
of its CPU. So the objects that stay are moved out of the collector's reach (`gc.freeze()`)
soon after they appear, the young collections only ever scan what is recent, and Python's own
full collections are off: the schedule does them. What is frozen and later becomes a garbage
*cycle* would stay, and make the frozen heap grow; a full collection of everything, at most
every `full_every_s` and only once the frozen heap has grown by a quarter, reclaims it. A heap
that does not grow has no such garbage to reclaim, and is not walked at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable

from ytmaker_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

#: The oldest generation's threshold under the schedule: how many collections of the middle
#: generation may pass before Python collects everything by itself. So many that it never
#: does (hours at any rate): every `refreeze()` empties the old generation into the frozen one
#: anyway, and `full_collection()` is the schedule's. Python's own (10, and a quarter of the
#: survivors of the last full collection) collected the read side's whole history twice in
#: 35 s at S1, 0.2 s each (decision 0044).
NO_AUTOMATIC_FULL_COLLECTION = 1_000_000


def start_up(threshold: int = 0) -> None:
    """Collect once, freeze what the start-up left and leave full collections to the schedule;
    `threshold` > 0 sets the young generation's threshold (0 keeps Python's)."""
    gc.collect()
    gc.freeze()
    young, older, _ = gc.get_threshold()
    gc.set_threshold(threshold or young, older, NO_AUTOMATIC_FULL_COLLECTION)


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


def full_collection_due(frozen: int, mark: int) -> bool:
    """Whether the frozen heap has grown by a quarter since `mark`: Python's own rule, applied
    to what is frozen. A full pass walks everything (the gateway's thousand connections:
    0.4-0.5 s on a slow machine, a latency stall of its own; the read side's million updates
    of history: 5.6 s of a core), so a heap that does not grow, whose garbage cycles would
    make it grow, is not walked again (decisions 0044 and 0106)."""
    return 4 * frozen >= 5 * mark


async def run(
    interval_s: float,
    full_every_s: float,
    stopping: asyncio.Event,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """`refreeze()` every `interval_s`, and `full_collection()` at most every `full_every_s`
    (0: never) when `full_collection_due` since the last one (or the start), until `stopping`
    is set."""
    last_full, mark = clock(), gc.get_freeze_count()
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), interval_s)
        except TimeoutError:
            if (
                full_every_s > 0
                and clock() - last_full >= full_every_s
                and full_collection_due(gc.get_freeze_count(), mark)
            ):
                took = full_collection()
                last_full, mark = clock(), gc.get_freeze_count()
                log.info("full garbage collection", extra={"seconds": round(took, 4)})
            else:
                refreeze()


@contextlib.asynccontextmanager
async def scheduled(settings: ServiceSettings) -> AsyncIterator[None]:
    """The schedule of `settings` (`gc_*`) runs while the block does; nothing when
    `gc_freeze` is off."""
    if not settings.gc_freeze:
        yield
        return
    start_up(settings.gc_threshold)
    stopping = asyncio.Event()
    task = asyncio.create_task(
        run(settings.gc_freeze_interval_s, settings.gc_full_every_s, stopping), name="gc"
    )
    try:
        yield
    finally:
        stopping.set()
        await task

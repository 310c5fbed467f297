"""The fold's memory with and without eviction of finished tasks (no broker needed).

    python bench/progress_memory.py [--tasks 5000] [--running 100]

Folds `--tasks` finished runs and `--running` half-done ones into a lane, as the fold loop
does, and prints the lane's memory (tracemalloc) when every state is kept (the fold before
eviction) and after the finished ones are evicted to markers (grace period over).
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from typing import Any, cast

from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import apply
from ytmaker_progress.lanes import Lane


def fill(tasks: int, running: int) -> Lane:
    lane = Lane(0, cast(Any, None), cast(Any, None))
    now = time.monotonic()
    runs = [(f"f-{i}", run_events(f"f-{i}", steps=4)) for i in range(tasks)]
    runs += [(f"r-{i}", run_events(f"r-{i}", steps=4)[:20]) for i in range(running)]
    for task_id, run in runs:
        for _, event in run:
            new, _ = apply(lane.states.get(task_id), event)
            lane.keep(task_id, new, now)
    return lane


def measure(tasks: int, running: int, evict: bool) -> tuple[int, Lane]:
    gc.collect()
    tracemalloc.start()
    lane = fill(tasks, running)
    if evict:
        lane.evict(time.monotonic() + 1, grace_s=0.0, marker_s=28 * 24 * 3600.0)
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return size, lane


def main(tasks: int, running: int) -> None:
    kept, lane = measure(tasks, running, evict=False)
    print(
        f"{tasks} finished + {running} running tasks, every state kept: {kept / 1e6:.1f} MB "
        f"({len(lane.states)} states, {kept / len(lane.states):,.0f} B per task)"
    )
    evicted, lane = measure(tasks, running, evict=True)
    print(
        f"after eviction: {evicted / 1e6:.2f} MB ({len(lane.states)} states of running tasks, "
        f"{len(lane.finished)} markers of finished ones)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--running", type=int, default=100)
    a = parser.parse_args()
    main(a.tasks, a.running)

"""The read side's in-memory history: updates held as text (shipped) or parsed (before).

    python -m bench.read_side_memory [--tasks 2000] [--steps 4]

Folds `--tasks` whole runs (`steps` progress events per stage, each run ~100 updates at the
default) as the fold does, encodes every update as the fold writes it, and feeds the records to
a `RecentHistory` the way the sink does. Prints, for the updates as the sink holds them now
(their JSON text) and as it held them before decision 0046 (the parsed update): the memory
(tracemalloc), the objects the garbage collector tracks, and how long a full collection takes
with them held. Both in the same run, alternating.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import apply
from ytmaker_progress.readmodel.memory import RecentHistory
from ytmaker_progress.readmodel.rows import Rows, add_update, checked_update
from ytmaker_progress.records import encode_update
from ytmaker_shared.events import decode_with

EPOCH = "bench-epoch"


def records(tasks: int, steps: int) -> list[tuple[int, bytes]]:
    """Every update of `tasks` runs, as (offset, record value)."""
    out: list[tuple[int, bytes]] = []
    for n in range(tasks):
        task_id, state = f"t-{n:06d}", None
        for _, event in run_events(task_id, steps=steps):
            state, changes = apply(state, event)
            out += [(len(out), encode_update(update)) for update in changes]
    return out


def as_text(log: list[tuple[int, bytes]], per_task: int) -> RecentHistory:
    """What the sink does now: check, then hold the record's text."""
    memory = RecentHistory(per_task=per_task, max_tasks=1_000_000)
    for offset, value in log:
        memory.add(*add_update(Rows(), offset, EPOCH, value))
    return memory


def as_parsed(log: list[tuple[int, bytes]], per_task: int) -> dict[str, list[Any]]:
    """What the sink did before: hold the checked, parsed update (the items of each task)."""
    memory: dict[str, list[Any]] = {}
    for offset, value in log:
        add_update(Rows(), offset, EPOCH, value)  # checked, as the sink does
        update = decode_with(checked_update, value)
        item = {"offset": offset, "epoch": EPOCH, "update": update}
        memory.setdefault(update["task_id"], []).append(item)
        del memory[update["task_id"]][:-per_task]
    return memory


def measure(name: str, hold: Callable[[], object], updates: int) -> None:
    gc.collect()
    tracked_before = len(gc.get_objects())
    tracemalloc.start()
    held = hold()
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracked = len(gc.get_objects()) - tracked_before
    started = time.perf_counter()
    gc.collect()
    collection = time.perf_counter() - started
    print(
        f"{name:>7}: {size / 1e6:8.1f} MB ({size / updates:6,.0f} B per update), "
        f"{tracked:>10,} objects tracked by the collector, full collection {collection:.3f} s"
    )
    del held


def main(tasks: int, steps: int, per_task: int) -> None:
    log = records(tasks, steps)
    held = min(len(log), tasks * per_task)
    sizes = [len(value) for _, value in log]
    print(
        f"{tasks:,} runs, {len(log):,} updates (text {sum(sizes) / len(sizes):,.0f} B on "
        f"average), {held:,} held ({per_task} per task)"
    )
    for _ in range(2):
        measure("text", lambda: as_text(log, per_task), held)
        measure("parsed", lambda: as_parsed(log, per_task), held)
    sample = as_text(log[:200], per_task).items("t-000000", limit=1)
    assert sample and json.dumps(sample[0]["update"]["task_id"]) == '"t-000000"'


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=4, help="progress events per stage")
    parser.add_argument("--per-task", type=int, default=100, help="updates held per task")
    a = parser.parse_args()
    main(a.tasks, a.steps, a.per_task)

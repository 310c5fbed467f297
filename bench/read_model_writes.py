"""The read model's writes at S1's shape: CPU per update as the database grows, SQLite settings
compared in one run.

    python -m bench.read_model_writes [--rounds 300] [--variants "shipped;wal_autocheckpoint=1000"]

Makes `--tasks` runs (1,000) in their script stage, then `--rounds` progress events of each,
interleaved as S1 sends them (every task once a round), folded and encoded as the fold does.
Each variant stores them into a fresh SQLite file through `Store.write`, `--batch` (250) updates a
write as the sink gathers them in 250 ms at S1. A variant is `shipped` (the engine as the read
side opens it) or `PRAGMA`s applied over it (`name=value`, comma-separated). Prints the CPU time
of the writes (`time.process_time`) per update by quarter of the run: the cost as the history
grows. Variants alternate in the order given; list each twice to see the spread.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.harness.publishers import progressed, requested, started
from ytmaker_progress.fold import Folded, apply
from ytmaker_progress.readmodel.rows import Rows, add_update
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.records import encode_update

EPOCH = "bench-epoch"


def s1_updates(tasks: int, rounds: int) -> list[bytes]:
    """Every update of `tasks` runs: requested, script started, then `rounds` progress events
    each, a round at a time (as the delivery benchmark's S1 produces them)."""
    ids = [f"t-{n:06d}" for n in range(tasks)]
    requests = {task_id: requested(task_id, "bench") for task_id in ids}
    states: dict[str, Folded | None] = {}
    out: list[bytes] = []

    def fold(task_id: str, event: Any) -> None:
        states[task_id], changes = apply(states.get(task_id), event)
        out.extend(encode_update(update) for update in changes)

    for task_id in ids:
        fold(task_id, requests[task_id])
        fold(task_id, started(requests[task_id], "bench"))
    for seq in range(1, rounds + 1):
        for task_id in ids:
            fold(task_id, progressed(requests[task_id], seq, "bench"))
    return out


def with_pragmas(store: Store, variant: str) -> None:
    """Apply `variant`'s PRAGMAs on every connection of `store`, after the shipped ones."""
    if variant == "shipped":
        return
    pragmas = [p.strip() for p in variant.split(",") if p.strip()]

    def apply_pragmas(dbapi_conn: Any, _: Any) -> None:
        cursor = dbapi_conn.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    event.listen(store.engine, "connect", apply_pragmas)
    store.engine.dispose()  # the connection the migrations opened is made again, with them


def measure(updates: list[bytes], variant: str, batch: int, workdir: Path) -> list[float]:
    """CPU seconds of each write of `updates` into a fresh database, `batch` at a time."""
    store = Store(f"sqlite:///{tempfile.mkdtemp(dir=workdir)}/read-model.db")
    with_pragmas(store, variant)
    seconds: list[float] = []
    try:
        for first in range(0, len(updates), batch):
            rows = Rows()
            for offset, value in enumerate(updates[first : first + batch], start=first):
                add_update(rows, offset, EPOCH, value)
            began = time.process_time()
            store.write(rows, {("progress.updates", 0): (first + batch, EPOCH)})
            seconds.append(time.process_time() - began)
    finally:
        store.close()
    return seconds


def by_quarter(seconds: list[float], batch: int) -> list[float]:
    """µs of CPU per update in each quarter of the writes."""
    n = len(seconds)
    bounds = [0, n // 4, n // 2, 3 * n // 4, n]
    return [
        1e6 * sum(seconds[a:b]) / ((b - a) * batch) for a, b in itertools.pairwise(bounds) if b > a
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=300, help="progress events per task")
    parser.add_argument("--batch", type=int, default=250, help="updates per write")
    parser.add_argument(
        "--variants",
        default="shipped;wal_autocheckpoint=1000;shipped;wal_autocheckpoint=1000",
        help="';'-separated: 'shipped' or comma-separated PRAGMAs over it",
    )
    args = parser.parse_args(argv)
    updates = s1_updates(args.tasks, args.rounds)
    print(f"{len(updates):,} updates of {len(updates[-1])} bytes, {args.batch} a write")
    print(f"{'variant':<48} µs of CPU per update, by quarter of the writes")
    with tempfile.TemporaryDirectory(prefix="read-model-writes-") as workdir:
        for variant in args.variants.split(";"):
            quarters = by_quarter(measure(updates, variant, args.batch, Path(workdir)), args.batch)
            print(f"{variant:<48} " + "  ".join(f"{q:6.1f}" for q in quarters), flush=True)


if __name__ == "__main__":
    main()

"""The fold's CPU cost per event, without a broker: decode, apply, encode (docs/decisions/0028).

    python bench/progress_fold_cpu.py [--runs 300] [--batch 2000] [--repeat 5]

Folds `--runs` whole runs (`ytmaker_dev.scenario`, ~33 events each, most of them
stage.progress) whose events interleave by time as in a lane, from their bytes, the way
`runners/fold.py` does: `decode_event`, `apply`, `encode_update` for each update and `encode_state`
once per task touched in a batch of `--batch` records. Prints µs per event for each step (the
best of `--repeat` passes), and the same for a stage.progress event that publishes an update,
with its own state record (the worst case: the fold writes one per task and transaction).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import Folded, Input, apply
from ytmaker_progress.records import encode_state, encode_update
from ytmaker_shared.events import decode as decode_event
from ytmaker_shared.events import encode
from ytmaker_shared.stages import Stage


def stream(runs: int) -> list[bytes]:
    """The runs' events as bytes, interleaved by time (runs start 0.3 s apart)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for n in range(runs):
        kw: dict[str, Any] = {"start": start + timedelta(seconds=0.3 * n)}
        if n % 10 == 7:
            kw["retry_stage"] = Stage.IMAGES
        if n % 20 == 9:
            kw["ending"] = "failed"
        events += [event for _, event in run_events(f"task-{n:06d}", **kw)]
    events.sort(key=lambda e: e.occurred_at)
    return [encode(e) for e in events]


def best(passes: int, one_pass: Callable[[], float]) -> float:
    return min(one_pass() for _ in range(passes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    values = stream(args.runs)
    events: list[Input] = [decode_event(v) for v in values]
    n = len(values)

    def decode_pass() -> float:
        t = time.perf_counter()
        for value in values:
            decode_event(value)
        return time.perf_counter() - t

    def apply_pass() -> float:
        states: dict[str, Folded] = {}
        t = time.perf_counter()
        for event in events:
            states[event.task_id], _ = apply(states.get(event.task_id), event)
        return time.perf_counter() - t

    # The fold's output, for the encode pass (kept apart: holding every state of the stream
    # while folding would time the garbage collector, not the fold).
    states: dict[str, Folded] = {}
    before: dict[str, Folded | None] = {}
    folded: list[tuple[Folded, list[Any]]] = []
    for event in events:
        before[event.event_id] = states.get(event.task_id)
        new, updates = apply(states.get(event.task_id), event)
        states[event.task_id] = new
        folded.append((new, updates))

    def encode_pass() -> float:
        t = time.perf_counter()
        for start in range(0, n, args.batch):
            touched: dict[str, Folded] = {}
            for new, updates in folded[start : start + args.batch]:
                for update in updates:
                    encode_update(update)
                touched[new.task.task_id] = new
            for state in touched.values():
                encode_state(state)
        return time.perf_counter() - t

    decode_s = best(args.repeat, decode_pass)
    apply_s = best(args.repeat, apply_pass)
    encode_s = best(args.repeat, encode_pass)
    update_count = sum(len(u) for _, u in folded)
    progress = sum(1 for e in events if e.type == "stage.progress")
    print(
        f"{n:,} events of {args.runs} runs ({progress / n:.0%} stage.progress), "
        f"{update_count:,} updates, state records per batch of {args.batch:,}"
    )
    us = 1e6 / n
    print(
        f"mix            µs/event: decode {decode_s * us:5.1f}  apply {apply_s * us:5.1f}  "
        f"encode {encode_s * us:5.1f}  total {(decode_s + apply_s + encode_s) * us:5.1f}"
    )

    # A stage.progress event that publishes an update, and its own state record.
    cases = [
        (value, event, before[event.event_id])
        for value, event, (_, updates) in zip(values, events, folded, strict=True)
        if event.type == "stage.progress" and updates
    ]
    outs = [apply(old, event) for _, event, old in cases]

    def hot_decode() -> float:
        t = time.perf_counter()
        for value, _, _ in cases:
            decode_event(value)
        return time.perf_counter() - t

    def hot_apply() -> float:
        t = time.perf_counter()
        for _, event, old in cases:
            apply(old, event)
        return time.perf_counter() - t

    def hot_encode_update() -> float:
        t = time.perf_counter()
        for _, ups in outs:
            encode_update(ups[0])
        return time.perf_counter() - t

    def hot_encode_state() -> float:
        t = time.perf_counter()
        for new, _ in outs:
            encode_state(new)
        return time.perf_counter() - t

    d, a, u, s = (
        best(args.repeat, f) for f in (hot_decode, hot_apply, hot_encode_update, hot_encode_state)
    )
    us = 1e6 / len(cases)
    print(
        f"stage.progress µs/event: decode {d * us:5.1f}  apply {a * us:5.1f}  "
        f"encode {(u + s) * us:5.1f} (update {u * us:.1f} + state {s * us:.1f})  "
        f"total {(d + a + u + s) * us:5.1f}  ({len(cases):,} events with an update)"
    )


if __name__ == "__main__":
    main()

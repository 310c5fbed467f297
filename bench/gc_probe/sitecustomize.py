"""What a full garbage collection of a running service walks, on demand (decisions 0106, 0108).

Not a dependency of anything: put this directory first on `PYTHONPATH` of a benchmark run, and
every Python process it starts imports it. Then, for the process with pid PID:

- `kill -USR1 PID` counts the objects the collector tracks by type (and suspended
  coroutines, functions and bound methods by name), the frozen start-up heap only in total,
  and times one full collection as `gcpolicy.full_collection()` does it (that heap left out,
  decision 0112), so the time is the stall the schedule makes (its CPU time beside it: the
  wall time also counts the moments the busy machine gave the core to another process);
- `kill -USR2 PID` counts, for containers (lists, dicts, deques, contexts, bound methods...),
  which object holds each: where the objects per connection come from (slow: seconds).

Each appends to `$GC_PROBE_DIR/<pid>.txt` (default: the temporary directory). For example,
with 1,000 clients connected in the benchmark's warm-up:

    PYTHONPATH=bench/gc_probe .venv/bin/python -m bench.delivery --targets ytmaker \\
        --scenarios S1 --rounds 1 --skip disconnect,idle,resume,fanout &
    sleep 90; kill -USR1 $(pgrep -f "m ytmaker_gateway")
"""

import os
import signal
import tempfile
import time

_OUT = os.environ.get("GC_PROBE_DIR") or tempfile.gettempdir()


def _write(lines: list[str]) -> None:
    with open(os.path.join(_OUT, f"{os.getpid()}.txt"), "a") as out:
        out.write("\n".join(lines) + "\n")


def _name(thing: object) -> str:
    import types

    kind = type(thing)
    if kind in (types.CoroutineType, types.GeneratorType):
        return f"{kind.__name__} {thing.__qualname__}"  # type: ignore[attr-defined]
    if kind is types.FunctionType:
        return f"function {thing.__module__}.{thing.__qualname__}"  # type: ignore[attr-defined]
    if kind is types.MethodType:
        return f"method {type(thing.__self__).__name__}.{thing.__func__.__name__}"  # type: ignore[attr-defined]
    return kind.__name__


def _census(signum: int, frame: object) -> None:
    import collections
    import gc
    import sys

    frozen = gc.get_freeze_count()  # the start-up heap: left out of the census and the pass
    tracked = gc.get_objects()
    by_type = collections.Counter(type(thing).__name__ for thing in tracked)
    by_name = collections.Counter(_name(thing) for thing in tracked)
    count = len(tracked)
    del tracked
    started, cpu = time.perf_counter(), time.thread_time()
    found = gc.collect()
    took, cpu = time.perf_counter() - started, time.thread_time() - cpu
    lines = [
        f"{time.strftime('%H:%M:%S')} {sys.argv[:1]} tracked={count} (frozen {frozen}) "
        f"full collection {took:.3f} s ({cpu:.3f} s of CPU), {found} unreachable"
    ]
    lines += [f"  {n:8d} {name}" for name, n in by_type.most_common(40)]
    lines += ["  -- by name (500 and more)"]
    lines += [f"  {n:8d} {name}" for name, n in by_name.most_common(80) if n >= 500 and " " in name]
    _write(lines)


def _holders(signum: int, frame: object) -> None:
    import collections
    import gc

    kinds = {
        "list",
        "dict",
        "deque",
        "set",
        "tuple",
        "Context",
        "method",
        "cell",
        "builtin_function_or_method",
    }
    tracked = gc.get_objects()  # the frozen start-up heap left out
    wanted = {id(thing) for thing in tracked if type(thing).__name__ in kinds}
    holder: dict[int, object] = {}
    for thing in tracked:
        for inner in gc.get_referents(thing):
            if id(inner) in wanted:
                holder.setdefault(id(inner), thing)
    held: collections.Counter[str] = collections.Counter()
    for thing in tracked:
        if id(thing) in wanted:
            chain: list[str] = []
            at = holder.get(id(thing))
            while at is not None and len(chain) < 3:
                chain.append(_name(at))
                at = holder.get(id(at)) if type(at) in (dict, list, tuple) else None
            held[f"{type(thing).__name__} <- {' <- '.join(chain) or '?'}"] += 1
    del tracked, wanted, holder
    _write(
        ["  -- held by (500 and more)"]
        + [f"  {n:8d} {name}" for name, n in held.most_common(60) if n >= 500]
    )


signal.signal(signal.SIGUSR1, _census)
signal.signal(signal.SIGUSR2, _holders)

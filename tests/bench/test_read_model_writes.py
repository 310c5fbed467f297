"""`bench.read_model_writes` runs on a tiny size: S1-shaped updates, every variant stored and
reported by quarter, the PRAGMAs of a variant applied to the store it measures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.read_model_writes import measure, s1_updates, with_pragmas
from ytmaker_progress.readmodel.store import Store


def test_updates_come_a_round_at_a_time_over_every_task() -> None:
    updates = s1_updates(tasks=3, rounds=2)
    last_six = [json.loads(value) for value in updates[-6:]]
    assert [u["task_id"] for u in last_six] == ["t-000000", "t-000001", "t-000002"] * 2
    steps = [u["state"]["completed_steps"] for u in last_six]
    assert steps == [1, 1, 1, 2, 2, 2]


def test_a_variant_sets_its_pragmas_over_the_shipped_ones(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'v.db'}")
    try:
        with_pragmas(store, "wal_autocheckpoint=1000, cache_size=-4096")
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -4096
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.close()


def test_every_write_is_timed(tmp_path: Path) -> None:
    updates = s1_updates(tasks=5, rounds=4)
    seconds = measure(updates, "shipped", batch=7, workdir=tmp_path)
    assert len(seconds) == -(-len(updates) // 7) and all(s >= 0 for s in seconds)


def test_the_script_prints_a_line_per_variant() -> None:
    sizes = ["--tasks", "10", "--rounds", "8", "--batch", "10"]
    variants = ["--variants", "shipped;wal_autocheckpoint=1000"]
    out = subprocess.run(
        [sys.executable, "-m", "bench.read_model_writes", *sizes, *variants],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith("100 updates of")  # 10 requested + 10 started + 80 progress
    figures = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert set(figures) == {"shipped", "wal_autocheckpoint=1000"}
    assert all(len(quarters) == 4 and float(quarters[0]) > 0 for quarters in figures.values())

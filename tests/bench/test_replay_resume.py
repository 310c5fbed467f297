"""The replay benchmark (`bench/replay_resume.py`) runs at a tiny size: every missed update
arrives once, in order, and the figures it prints have the expected shape. Not a timed test:
no target is asserted here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

LINE = re.compile(
    r"missed +([0-9,]+): last missed update after +([0-9.]+) ms .*"
    r"exactly once, in order: (True|False)"
)


def test_the_replay_benchmark_measures_exact_resumes(kafka_bootstrap: str) -> None:
    run = subprocess.run(
        [sys.executable, "bench/replay_resume.py", "--missed", "50", "300", "--others", "20"],
        cwd=ROOT,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    found = [m.groups() for m in map(LINE.search, run.stdout.splitlines()) if m]
    assert [int(missed.replace(",", "")) for missed, _, _ in found] == [50, 300], run.stdout
    assert all(exact == "True" for _, _, exact in found), run.stdout
    assert all(0 < float(ms) < 60_000 for _, ms, _ in found), run.stdout

"""`bench.loopback_cost` runs on a tiny size and reports both sides of both ways of sending."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_probe_reports_the_cpu_of_each_side_per_message() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.loopback_cost", "--sends", "2000", "--size", "100"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(out.stdout)
    assert (result["sends"], result["size"]) == (2000, 100)
    for way in ("back_to_back", "paced"):
        figures = result[way]
        assert set(figures) == {"sender_user_us", "sender_system_us", "reader_us"}
        assert all(value >= 0 for value in figures.values())
    # a paced send wakes the reader: each side spends something on every message. (Each side's
    # total is the kernel's exact run time; its split between user and system is sampled at
    # the timer's ticks, and 2,000 sends may meet none in the kernel: CI at 5c62aa4 read 0.)
    paced = result["paced"]
    assert paced["sender_user_us"] + paced["sender_system_us"] > 0 and paced["reader_us"] > 0

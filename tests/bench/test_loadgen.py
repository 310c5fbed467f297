"""The harness's helper processes stop at once when a run is stopped in the middle of a command
(a SIGTERM or Ctrl-C during a phase), instead of after the command's whole length."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import time
from pathlib import Path

from bench.harness.loadgen import ProducerProcess

#: Answers like the producer: ready, then one line a command; a stream never ends.
STAND_IN = """
    import json, sys, time
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        op = json.loads(line)["op"]
        if op == "quit":
            break
        if op == "stream":
            print("streaming", file=sys.stderr, flush=True)
            time.sleep(3600)
        print(json.dumps({"op": op}), flush=True)
"""


class StandIn(ProducerProcess):
    module = "stand_in_producer"


def stand_in(tmp_path: Path) -> StandIn:
    (tmp_path / "stand_in_producer.py").write_text(textwrap.dedent(STAND_IN))
    return StandIn("none", {"PYTHONPATH": str(tmp_path)}, tmp_path / "producer.log")


async def test_a_command_given_up_does_not_hold_the_stop(tmp_path: Path) -> None:
    producer = stand_in(tmp_path)
    await producer.start()
    assert await producer.call("prepare") == {"op": "prepare"}
    stream = asyncio.create_task(producer.call("stream"))
    deadline = time.monotonic() + 10
    while "streaming" not in producer.log.read_text():  # the process is in the command
        assert time.monotonic() < deadline, "the stand-in never started streaming"
        await asyncio.sleep(0.01)
    stream.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stream
    started = time.monotonic()
    await asyncio.wait_for(producer.stop(), 10)  # it waited 30 s for `quit`, then killed
    assert time.monotonic() - started < 5
    assert producer.proc is not None and producer.proc.returncode is not None


async def test_an_idle_process_is_asked_to_quit(tmp_path: Path) -> None:
    producer = stand_in(tmp_path)
    await producer.start()
    assert await producer.call("prepare") == {"op": "prepare"}
    await asyncio.wait_for(producer.stop(), 10)
    assert producer.proc is not None and producer.proc.returncode == 0  # not killed: it quit

"""The `ytmaker` command line for users, against the running system (docs/cli.md).

- `submit --watch` in a pseudo-terminal, read through a terminal emulator: the live display
  as a person sees it (overall bar, one bar per stage with status and attempt, the message,
  the connection), through a link the test cuts mid-run: the display says it reconnects and
  the run is followed to its end;
- the other commands on a finished run (status, history, runs, download, open) and on a run
  that is paused, resumed and cancelled; every error is one line and a non-zero exit.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.proxy import Proxy
from tests.support.terminal import Terminal
from tests.support.wait import poll

from .conftest import SAMPLE, YTMAKER, InProcess, Result, Running

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.timeout(420)]

STAGE_NAMES = ("script", "images", "audio", "avatars", "render", "upload")


def console_script(
    running: Running, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`.venv/bin/ytmaker` as a user runs it (the other tests call it in-process)."""
    return subprocess.run(
        [str(YTMAKER), *args],
        env=env or running.cli_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line_error(result: subprocess.CompletedProcess[str] | Result) -> str:
    """The error a failed command printed: exactly one line, no traceback."""
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_watch_in_a_terminal_survives_a_cut(running: Running, tmp_path: Path) -> None:
    text = tmp_path / "how-tides-work.txt"
    text.write_text(SAMPLE, encoding="utf-8")
    proxy = Proxy("127.0.0.1", running.gateway_port).start()
    frames: list[str] = []
    cut_at: list[str] = []

    def on_frame(screen: str) -> None:
        frames.append(screen)
        running_now = re.search(r"status running", screen) and "overall" in screen
        if running_now and not cut_at and "images" in screen:
            cut_at.append(screen)
            proxy.cut()

    term = Terminal(
        [
            str(YTMAKER),
            "--url",
            proxy.url,
            "submit",
            "--file",
            str(text),
            "--segments",
            "2",
            "--target-length",
            "10",
            "--watch",
        ],
        running.cli_env(),
    )
    try:
        code = term.run(on_frame, timeout=300)
    finally:
        proxy.stop()
    final = term.text()
    assert code == 0, final
    assert cut_at, "the run was never seen running"
    assert any("reconnecting in" in f for f in frames), "the display never showed the reconnect"
    assert proxy.accepted >= 2  # it connected again by itself

    # What the person sees at the end: the title, every bar full, every stage completed.
    assert "how tides work" in final
    assert re.search(r"overall\s+━+\s+100\.0 %\s+completed", final), final
    for stage in STAGE_NAMES:  # avatars: skipped offline (no presenter service)
        assert re.search(rf"{stage}\s+━+\s+100\.0 %\s+(completed|skipped)\s+attempt 1", final)
    assert "connection connected" in final
    task_id = re.search(r"completed: (\S+)", final)
    assert task_id, final
    # While it ran, the person saw a partial bar and a stage at work.
    partial = [f for f in frames if re.search(r"overall\s+\S+\s+(\d+\.\d) %", f)]
    shown = {
        float(m.group(1))
        for f in partial
        for m in [re.search(r"overall\s+\S+\s+(\d+\.\d) %", f)]
        if m
    }
    assert any(0 < p < 100 for p in shown), shown
    assert any(re.search(r"\s(running)\s", f) for f in frames)


def test_commands_on_a_run(
    ytmaker: InProcess, running: Running, finished: tuple[str, str], tmp_path: Path
) -> None:
    task_id, project_id = finished
    watched = ytmaker("watch", task_id)  # not a terminal: one line per update
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.strip().splitlines()
    assert lines[-1] == f"completed: {task_id}"
    assert "100.0 %  completed" in lines[-2]
    assert any("stage.progress" in line for line in lines)

    status = json.loads(ytmaker("status", task_id, "--json").stdout)
    assert status["status"] == "completed" and status["progress"] == 100.0
    table = ytmaker("status", task_id).stdout
    for stage in STAGE_NAMES:
        assert re.search(rf"{stage}\s+│\s+(completed|skipped)\s+│\s+100\.0 %", table), table

    history = json.loads(ytmaker("history", task_id, "--json").stdout)
    offsets = [item["offset"] for item in history["items"]]
    assert offsets == sorted(set(offsets)) and len(offsets) == len(lines) - 1
    assert history["items"][-1]["update"]["state"]["status"] == "completed"

    runs = json.loads(ytmaker("runs", "--project", project_id, "--json").stdout)
    assert (task_id, "completed") in [(r["task_id"], r["status"]) for r in runs]
    assert {r["project_id"] for r in runs} == {project_id}  # (other tests run it again)
    failed = ytmaker("runs", "--project", project_id, "--status", "failed", "--json")
    assert task_id not in [r["task_id"] for r in json.loads(failed.stdout)]
    assert f"runs ({len(runs)})" in ytmaker("runs", "--project", project_id).stdout

    out = tmp_path / "out"
    out.mkdir()
    downloaded = ytmaker("download", task_id, "-o", str(out), "--json")
    assert downloaded.returncode == 0, downloaded.stderr
    files = json.loads(downloaded.stdout)
    assert Path(files["video"]).read_bytes()[4:8] == b"ftyp"
    assert json.loads(Path(files["script"]).read_text())  # the script as JSON
    assert Path(files["thumbnail"]).stat().st_size > 0

    page = ytmaker("open", task_id).stdout.strip()
    assert page == f"{running.base}/projects/{project_id}?task={task_id}"
    assert httpx.get(page, timeout=10).status_code == 200

    refused = ytmaker("cancel", task_id)
    assert (
        one_line_error(refused) == "error: conflict: cannot cancel a task that is already completed"
    )
    assert refused.returncode == 1
    bob = running.cli_env(YTMAKER_TOKEN=running.token("bob"))
    assert one_line_error(ytmaker("status", task_id, env=bob)) == (
        "error: forbidden: no such task or project for you"
    )


def test_submit_from_stdin_and_runs(ytmaker: InProcess, running: Running) -> None:
    submitted = ytmaker(
        "submit",
        "--segments",
        "1",
        "--target-length",
        "10",
        "--tag",
        "sea",
        "--json",
        stdin=SAMPLE,
    )
    assert submitted.returncode == 0, submitted.stderr
    started = json.loads(submitted.stdout)
    task_id = started["task_id"]
    assert ytmaker("cancel", task_id, "--reason", "a test").returncode == 0
    listed: dict[str, dict[str, str]] = {}

    def in_my_runs() -> bool:  # once the read model has folded the run's first event
        runs = json.loads(ytmaker("runs", "--json").stdout)
        listed.update({r["task_id"]: r for r in runs})
        return task_id in listed

    poll(in_my_runs, timeout=30, what="the run in `ytmaker runs`")
    mine = listed[task_id]
    assert mine["project_id"] == started["project_id"]
    assert mine["title"] == SAMPLE.splitlines()[0][:200]
    watched = ytmaker("watch", task_id, "--plain")
    assert watched.returncode == 4, watched.stdout  # cancelled
    assert watched.stdout.strip().splitlines()[-1].startswith(f"cancelled: {task_id}")


def test_pause_resume_cancel(ytmaker: InProcess, running: Running) -> None:
    # Started and paused at once (a command line process starts slower than a stage works):
    # the script finishes the step in hand, nothing else starts until the resume.
    api = f"{running.base}/api/v1"
    # Four segments: a render long enough that the second pause lands before the upload.
    body = {"title": "Pause me", "content": SAMPLE + " " + SAMPLE, "settings": {"segments": 4}}
    task_id = httpx.post(f"{api}/projects", json=body, timeout=10).json()["task_id"]
    assert httpx.post(f"{api}/tasks/{task_id}/pause", timeout=10).status_code == 202
    wait_for_status(running, task_id, lambda s: s == "paused", "paused")
    assert json.loads(ytmaker("status", task_id, "--json").stdout)["status"] == "paused"

    resumed = ytmaker("resume", task_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["action"] == "resume"
    wait_for_status(running, task_id, lambda s: s != "paused", "resumed")
    paused = ytmaker("pause", task_id, "--reason", "lunch")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith(f"pause requested for {task_id}")
    wait_for_status(running, task_id, lambda s: s == "paused", "paused again")
    cancelled = ytmaker("cancel", task_id, "--reason", "changed my mind")
    assert cancelled.returncode == 0, cancelled.stderr

    watched = ytmaker("watch", task_id, "--json")
    updates = [json.loads(line) for line in watched.stdout.splitlines()]
    trail = [
        (u["offset"], u["event_type"], u["state"]["stage"], u["state"]["status"]) for u in updates
    ]
    if watched.returncode != 4:
        print("\n".join(map(str, trail)))
    assert watched.returncode == 4, "not cancelled: see the printed trail"
    assert [u["offset"] for u in updates] == sorted({u["offset"] for u in updates})
    statuses = [u["state"]["status"] for u in updates]
    assert statuses[-1] == "cancelled"
    assert statuses.count("paused") >= 2 and "running" in statuses


def wait_for_status(running: Running, task_id: str, ok: object, what: str) -> None:
    """Poll the gateway (not the command line: a process start is slower than a stage)."""
    check = ok if callable(ok) else None
    assert check is not None
    url = f"{running.base}/api/v1/progress/{task_id}"
    deadline = time.monotonic() + 60
    while not check(httpx.get(url, timeout=10).json()["status"]):
        assert time.monotonic() < deadline, f"the task never became {what}"
        time.sleep(0.2)


def test_errors_are_one_line(ytmaker: InProcess, running: Running, tmp_path: Path) -> None:
    unreachable = running.cli_env(YTMAKER_URL="http://127.0.0.1:9")
    assert one_line_error(console_script(running, "status", "x", env=unreachable)).startswith(
        "error: cannot reach the gateway: http://127.0.0.1:9"
    )
    bad = ytmaker("submit", "text", "--segments", "0")
    assert one_line_error(bad).startswith("error: --segments: ") and bad.returncode == 2
    missing = ytmaker("submit", "--file", str(tmp_path / "nope.txt"))
    assert one_line_error(missing).startswith("error: cannot read ")
    forged = running.cli_env(YTMAKER_TOKEN="forged")
    assert "unauthorized" in one_line_error(ytmaker("status", "x", env=forged))
    assert "unauthorized" in one_line_error(ytmaker("watch", "x", env=forged))
    unknown = ytmaker("watch", "0190f1c2-7a3b-7c00-8000-00000000beef")
    assert one_line_error(unknown) == "error: forbidden: no such task or project for you"
    not_an_id = one_line_error(ytmaker("status", "no-such-task"))
    assert not_an_id.startswith("error: invalid_request: ") and "task_id" in not_an_id
    kafka_down = running.cli_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert "Kafka" in one_line_error(console_script(running, "dlq", "list", env=kafka_down))
    usage = ytmaker("replay", "no.such.topic")
    assert usage.returncode == 2 and "unknown topic 'no.such.topic'" in usage.stderr

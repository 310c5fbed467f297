"""The examples of docs/sdk-python.md and docs/cli.md, run as written against the running
system: every ```python block as a script, every `$ ytmaker ...` line of a ```console block
as a shell command (a trailing `# exit N` is the exit code it must end with, else 0)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, SAMPLE, InProcess, Running

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.timeout(600)]

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(doc: str, language: str) -> list[str]:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    return [body for lang, body in FENCE.findall(text) if lang == language]


def environment(running: Running, finished: tuple[str, str]) -> dict[str, str]:
    env = running.cli_env(YTMAKER_TOKEN=running.token("dev"), TASK=finished[0])
    env["YTMAKER_TASK"] = finished[0]
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_sdk_guide_runs(running: Running, finished: tuple[str, str], tmp_path: Path) -> None:
    examples = blocks("sdk-python.md", "python")
    assert len(examples) >= 5
    env = environment(running, finished)
    for number, code in enumerate(examples, 1):
        script = tmp_path / f"example_{number}.py"
        script.write_text(code, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(script)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"example {number}:\n{code}\n{done.stdout}\n{done.stderr}"
        assert done.stdout.strip(), f"example {number} printed nothing"


def test_the_cli_guide_runs(
    running: Running, finished: tuple[str, str], ytmaker: InProcess, tmp_path: Path
) -> None:
    """Each command as written, with the shell's `$VARIABLES` expanded; run in this process
    (a process start per command is what the terminal test already covers)."""
    (tmp_path / "article.txt").write_text(SAMPLE, encoding="utf-8")
    env = environment(running, finished)
    commands = [
        line[2:]
        for body in blocks("cli.md", "console")
        for line in body.splitlines()
        if line.startswith("$ ")
    ]
    assert len(commands) >= 15
    here = Path.cwd()
    os.chdir(tmp_path)
    try:
        for command in commands:
            expected = re.search(r"#\s*exit (\d+)\s*$", command)
            words = shlex.split(command, comments=True)
            assert words[0] == "ytmaker" and "|" not in words, command
            argv = [_expand(word, env) for word in words[1:]]
            done = ytmaker(*argv, env=env)
            want = int(expected.group(1)) if expected else 0
            assert done.returncode == want, f"$ {command}\n{done.stdout}\n{done.stderr}"
            if want:
                assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    finally:
        os.chdir(here)


def _expand(word: str, env: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), m.group(0)), word)

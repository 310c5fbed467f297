"""One running system for the SDK's and the command line's end-to-end tests: every service
as its own process on the test broker, under a topic prefix of its own (tests/e2e/system.py),
started once for the tests of this directory and stopped (its topics deleted) after them."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.system import System, running_system
from ytmaker_client import RestClient
from ytmaker_gateway.auth import TokenConfig, mint_token

ROOT = Path(__file__).resolve().parents[3]
YTMAKER = ROOT / ".venv" / "bin" / "ytmaker"
SAMPLE = (
    "The Moon's gravity pulls on the oceans, raising a bulge of water on the side facing it "
    "and another on the far side. As the Earth turns, each coast passes through both bulges, "
    "so most places see two high tides a day."
)
TERMINAL = ("completed", "failed", "cancelled")
#: A short run: the smallest settings that still exercise every stage.
SHORT = {"language": "en", "segments": 2, "target_length_seconds": 10}


class Running:
    """The running system (`tests.e2e.system.running_system`), with what these tests need to
    reach it; everything else is the `System`'s."""

    def __init__(self, system: System) -> None:
        self.system = system

    def __getattr__(self, name: str) -> Any:
        return getattr(self.system, name)

    @property
    def bootstrap(self) -> str:
        return self.env["KAFKA_BOOTSTRAP_SERVERS"]

    def token(self, user: str, *roles: str) -> str:
        config = TokenConfig(secret=self.env["YTMAKER_JWT_SECRET"])
        return mint_token(config, user, roles)

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The environment of a `ytmaker` process aimed at this system."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("YTMAKER_", "KAFKA_"))}
        env.update(
            {
                "YTMAKER_URL": self.base,
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "YTMAKER_TOPIC_PREFIX": self.prefix,
                "YTMAKER_JWT_SECRET": self.env["YTMAKER_JWT_SECRET"],
                "YTMAKER_PROGRESS_DATABASE_URL": self.env["YTMAKER_PROGRESS_DATABASE_URL"],
                "YTMAKER_INTERNAL_TOKEN": self.env.get("YTMAKER_INTERNAL_TOKEN", ""),
                "NO_COLOR": "1",
                "COLUMNS": "160",
            }
        )
        env.update(extra)
        return env


@pytest.fixture(scope="package")
def finished(running: Running) -> tuple[str, str]:
    """(task_id, project_id) of a run that completed, shared by the tests that only read one
    (a run costs a dozen seconds of both cores)."""

    async def run() -> tuple[str, str]:
        async with RestClient(running.base) as rest:
            started = await rest.create_project("A finished run", SAMPLE, SHORT)
            deadline = time.monotonic() + 300
            while (state := await rest.task(started.task_id)).status not in TERMINAL:
                assert time.monotonic() < deadline, "the shared run did not finish"
                await asyncio.sleep(0.3)
            assert state.status == "completed", state
            return started.task_id, started.project_id

    return asyncio.run(run())


@pytest.fixture(scope="package")
def running(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("clients-system")
    with running_system(kafka_bootstrap, tmp, "clients") as system:
        yield Running(system)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class InProcess:
    """`ytmaker` run in this process (`ytmaker_cli.main.main(argv)`), with the environment of
    `Running.cli_env` for the call and stdin given: the same code as the console script
    without a process start per command (a second each; the console script itself is run by
    the terminal and docs tests)."""

    def __init__(self, running: Running, capsys: pytest.CaptureFixture[str]) -> None:
        self.running = running
        self.capsys = capsys

    def __call__(self, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
        from ytmaker_cli.main import main

        saved = dict(os.environ)
        saved_stdin = sys.stdin
        os.environ.clear()
        os.environ.update(env or self.running.cli_env())
        sys.stdin = io.StringIO(stdin)
        self.capsys.readouterr()
        try:
            code = main(list(args))
        finally:
            os.environ.clear()
            os.environ.update(saved)
            sys.stdin = saved_stdin
        out, err = self.capsys.readouterr()
        return Result(code, out, err)


@pytest.fixture
def ytmaker(running: Running, capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(running, capsys)

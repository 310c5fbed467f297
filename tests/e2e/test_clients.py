"""The clients' own test suites, run with Node's test runner (`npm test` in each package of
clients/, after `make clients` built them): the TypeScript SDK against the real system it
starts (with the python-socketio endpoint followed by socket.io-client), and the React
component in Chromium. They share this session's broker. Their output is shown on failure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.components import unavailable

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

CLIENTS = Path(__file__).resolve().parents[2] / "clients"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("package", ["typescript", "react"])
def test_client_package(package: str, kafka_bootstrap: str) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        unavailable("Node.js and npm are not installed")
    if not (CLIENTS / package / "dist").is_dir():
        unavailable(f"clients/{package} is not built: run make clients")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    done = subprocess.run(
        ["npm", "test", "--silent"],
        cwd=CLIENTS / package,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    output = done.stdout + done.stderr
    summary = dict(re.findall(r"^# (tests|pass|fail|skipped) (\d+)$", output, re.MULTILINE))
    assert done.returncode == 0, output[-20000:]
    assert int(summary.get("fail", -1)) == 0 and int(summary.get("pass", 0)) > 0, output[-5000:]
    if os.environ.get("CI", "").lower() == "true":
        assert int(summary.get("skipped", 0)) == 0, f"skipped in CI:\n{output[-5000:]}"

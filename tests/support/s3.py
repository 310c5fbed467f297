"""Pytest plugin: a real S3-compatible server for tests (moto's server mode, from PyPI).

Fixtures:

* ``s3_server`` (session): an `S3Server` — `moto.server` started as its own process on a free
  port of 127.0.0.1, stopped at the end. Its `env` holds the variables that point boto3 at it
  (endpoint, region, test credentials).
* ``s3_bucket`` (function): a fresh, empty bucket on that server; returns its name.
* ``s3_env`` (function): sets `s3_server.env` in this process for the test (monkeypatch), so
  that `open_store("s3://...")` reaches the server.

When the server cannot be started the test is skipped locally and fails in CI
(:func:`tests.support.components.unavailable`).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ytmaker_dev.ports import free_port

from .components import unavailable

START_TIMEOUT = 30.0


@dataclass
class S3Server:
    endpoint: str
    env: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"t-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name)
        return name


def _wait(proc: subprocess.Popen[bytes], endpoint: str, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited: {log.read_text(errors='replace')[-1500:]}")
        try:
            httpx.get(endpoint, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError("moto server did not answer in time") from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server for the whole session (see the module doc)."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        unavailable(f"moto[server] is not installed: {exc}")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix="ytmaker-moto-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait(proc, endpoint, log)
    except RuntimeError as exc:
        proc.kill()
        proc.wait()
        unavailable(f"cannot start moto's S3 server: {exc}")
    env = {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    try:
        yield S3Server(endpoint, env)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server.env

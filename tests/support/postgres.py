"""Pytest plugin: a real, throwaway PostgreSQL server for tests.

Load it with ``pytest_plugins = ["tests.support.postgres"]`` (or import the fixtures).

Fixtures:

* ``postgres_server`` (session): a PostgreSQL server of the test session's own: ``initdb`` in a
  temporary directory, ``postgres`` on a free port of 127.0.0.1 with its unix socket in that
  directory, stopped and deleted at the end. The binaries are found under
  ``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package), else on ``PATH``.
  PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` user (or
  ``nobody``). ``YTMAKER_TEST_POSTGRES_URL`` (a server URL without database) uses that server
  instead.
* ``postgres_url`` (function): a fresh, empty database on that server, as a SQLAlchemy URL
  (``postgresql+psycopg://...``).

When no server can be started the test is skipped locally and fails in CI
(:func:`tests.support.components.unavailable`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ytmaker_dev.ports import free_port

from .components import unavailable

START_TIMEOUT = 60.0


@dataclass
class PostgresServer:
    """A running server: `url(database)` is a SQLAlchemy URL on it."""

    host: str
    port: int
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database; return its name."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:16]}"
        dsn = f"host={self.host} port={self.port} user={self.user} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def find_binaries() -> Path | None:
    """The directory holding initdb and postgres, newest version first."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for directory in candidates:
        if (Path(directory) / "initdb").exists() and (Path(directory) / "postgres").exists():
            return Path(directory)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return Path(initdb).parent
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The user to run the server as: None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


class LocalPostgres:
    """initdb + postgres in a temporary directory. `start()`, then `stop()`."""

    def __init__(self) -> None:
        self.bin = find_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="ytmaker-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = _run_as()
        self.process: subprocess.Popen[bytes] | None = None

    def _as_user(self) -> dict[str, object]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def start(self) -> PostgresServer:
        if self.bin is None:
            raise RuntimeError("no PostgreSQL binaries (install Debian's postgresql package)")
        if os.geteuid() == 0 and self.user is None:
            raise RuntimeError("running as root and no postgres/nobody user to run the server")
        if self.user is not None:
            os.chmod(self.root, 0o755)
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        log = self.root / "initdb.log"
        with log.open("wb") as out:
            done = subprocess.run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                check=False,
                **self._as_user(),  # type: ignore[arg-type]
            )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {log.read_text(errors='replace')[-2000:]}")
        server_log = (self.root / "server.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=server_log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **self._as_user(),  # type: ignore[arg-type]
        )
        server = PostgresServer("127.0.0.1", self.port)
        self._wait_ready(server)
        return server

    def _wait_ready(self, server: PostgresServer) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        dsn = f"host={server.host} port={server.port} user=postgres dbname=postgres"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                text = (self.root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres exited: {text}")
            try:
                with psycopg.connect(dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError("postgres did not accept connections in time") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (see the module doc)."""
    external = os.environ.get("YTMAKER_TEST_POSTGRES_URL")
    if external:
        from sqlalchemy.engine import make_url

        url = make_url(external)
        yield PostgresServer(url.host or "127.0.0.1", url.port or 5432, url.username or "postgres")
        return
    local = LocalPostgres()
    try:
        server = local.start()
    except (RuntimeError, OSError) as exc:
        local.stop()
        unavailable(f"cannot start PostgreSQL: {exc}")
    try:
        yield server
    finally:
        local.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server (SQLAlchemy URL)."""
    return postgres_server.url(postgres_server.create_database())

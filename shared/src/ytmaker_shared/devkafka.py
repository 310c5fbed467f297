"""A real, local, single-node Apache Kafka broker (KRaft) for development and tests.

No Docker: the broker is the official Kafka server jar run by a local Java 17 runtime. The jars
are fetched once with Maven (``deploy/kafka/pom.xml``) into a cache outside the source tree.

Command line (``python -m ytmaker_shared.devkafka COMMAND``):

* ``fetch``   download the Kafka jars into the cache (once; later calls return at once).
* ``start``   start a broker in the background and return once a client can really bootstrap.
              Does nothing when ``KAFKA_BOOTSTRAP_SERVERS`` is set (that cluster is used instead)
              or when the broker of this data directory already runs.
* ``stop``    stop the broker of this data directory (SIGTERM, then SIGKILL after a deadline).
* ``status``  exit code 0 when the broker runs and answers, 1 when it runs but does not answer,
              3 when it does not run.
* ``run``     start in the foreground; Ctrl-C / SIGTERM stop it cleanly.
* ``measure`` start a throw-away broker twice (cold, then warm restart) and print timings.

Environment (all optional):

* ``KAFKA_BOOTSTRAP_SERVERS``       use this cluster; ``start``/``run``/:func:`ensure_broker`
                                    start nothing.
* ``YTMAKER_KAFKA_DATA_DIR``        broker data, config, logs and pid file (default
                                    ``./var/kafka``, relative to the current directory).
* ``YTMAKER_KAFKA_PORT``            client (PLAINTEXT) port on 127.0.0.1, default 9092.
* ``YTMAKER_KAFKA_CONTROLLER_PORT`` KRaft controller port on 127.0.0.1, default 9093.
* ``YTMAKER_KAFKA_CACHE``           cache root for the jars (default ``$XDG_CACHE_HOME/ytmaker``
                                    or ``~/.cache/ytmaker``); jars go to
                                    ``<root>/kafka-<version>/libs``.
* ``YTMAKER_KAFKA_HEAP_OPTS``       JVM heap options (default ``-Xms256m -Xmx512m``).
* ``YTMAKER_KAFKA_POM``             path of the fetch pom, when this module is not run from the
                                    source tree.
* ``JAVA_HOME``                     Java runtime to use (default: ``java`` on ``PATH``).

Python API (what callers must do):

* :class:`LocalKafka` is one broker on one data directory. ``start()`` blocks until the broker
  serves clients (call it through ``asyncio.to_thread`` from async code if blocking the event
  loop matters); whoever calls ``start()`` must call ``stop()`` (or use ``with``). A broker
  started with ``detach=False`` (the default) is also stopped when the Python process exits
  normally; ``detach=True`` leaves it running for other processes.
* :func:`ensure_broker` returns the bootstrap servers to use: those of ``KAFKA_BOOTSTRAP_SERVERS``
  (and no handle) or those of a freshly started :class:`LocalKafka` (and its handle, which the
  caller must stop).
* :func:`measure_startup` measures cold and warm start-up time and memory.

The broker is a combined KRaft node (broker + controller, node id 1) listening on 127.0.0.1 only,
with replication factors of 1 (so transactions and consumer groups work on a single node),
``auto.create.topics.enable=false``, ``num.partitions=3`` and infinite default retention. Its
storage is formatted only when the data directory has no ``meta.properties`` yet, so a restart
on the same data directory keeps every message.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import fcntl
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Final, TextIO

KAFKA_VERSION: Final = "3.9.2"
"""The one place where the Kafka version is pinned (passed to Maven as ``-Dkafka.version``)."""

ENV_BOOTSTRAP: Final = "KAFKA_BOOTSTRAP_SERVERS"
ENV_DATA_DIR: Final = "YTMAKER_KAFKA_DATA_DIR"
ENV_PORT: Final = "YTMAKER_KAFKA_PORT"
ENV_CONTROLLER_PORT: Final = "YTMAKER_KAFKA_CONTROLLER_PORT"
ENV_CACHE: Final = "YTMAKER_KAFKA_CACHE"
ENV_HEAP_OPTS: Final = "YTMAKER_KAFKA_HEAP_OPTS"
ENV_POM: Final = "YTMAKER_KAFKA_POM"

DEFAULT_PORT: Final = 9092
DEFAULT_CONTROLLER_PORT: Final = 9093
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_HEAP_OPTS: Final = ("-Xms256m", "-Xmx512m")
DEFAULT_START_TIMEOUT: Final = 120.0
DEFAULT_STOP_TIMEOUT: Final = 60.0

# The JVM options of the official kafka-server-start.sh / kafka-run-class.sh.
_JVM_PERFORMANCE_OPTS: Final = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)
_KAFKA_MAIN: Final = "kafka.Kafka"
_STORAGE_TOOL_MAIN: Final = "kafka.tools.StorageTool"
_FETCH_MARKER: Final = ".fetched"
_PID_FILE: Final = "kafka.pid"


class DevKafkaError(RuntimeError):
    """Base class: the local broker cannot be fetched, started or stopped."""


class ToolMissingError(DevKafkaError):
    """A program the local broker needs (java, mvn) is not installed."""


class FetchError(DevKafkaError):
    """Fetching the Kafka jars with Maven failed."""


class BrokerStartError(DevKafkaError):
    """The broker did not come up (it died, or no client could bootstrap before the deadline)."""


class PortInUseError(BrokerStartError):
    """A port the broker needs is already taken on 127.0.0.1."""


class BrokerAlreadyRunningError(DevKafkaError):
    """Another process already runs a broker on this data directory."""


# --------------------------------------------------------------------------------------------
# Environment helpers


def external_bootstrap_servers() -> str | None:
    """Return ``KAFKA_BOOTSTRAP_SERVERS`` when set and not blank, else ``None``."""
    value = os.environ.get(ENV_BOOTSTRAP, "").strip()
    return value or None


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise DevKafkaError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise DevKafkaError(f"{name}={port} is not a valid port (1-65535)")
    return port


def default_data_dir() -> Path:
    """The data directory: ``$YTMAKER_KAFKA_DATA_DIR`` or ``./var/kafka`` (absolute path)."""
    raw = os.environ.get(ENV_DATA_DIR, "").strip()
    return Path(raw).expanduser().absolute() if raw else Path.cwd() / "var" / "kafka"


def default_heap_opts() -> tuple[str, ...]:
    """JVM heap options: ``$YTMAKER_KAFKA_HEAP_OPTS`` (shell words) or ``-Xms256m -Xmx512m``."""
    raw = os.environ.get(ENV_HEAP_OPTS, "").strip()
    return tuple(shlex.split(raw)) if raw else DEFAULT_HEAP_OPTS


def cache_root() -> Path:
    """Root of the jar cache: ``$YTMAKER_KAFKA_CACHE``, else ``$XDG_CACHE_HOME/ytmaker``, else
    ``~/.cache/ytmaker``."""
    raw = os.environ.get(ENV_CACHE, "").strip()
    if raw:
        return Path(raw).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base.absolute() / "ytmaker"


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    """Directory holding the jars of Kafka *version*: ``<cache_root>/kafka-<version>/libs``."""
    return cache_root() / f"kafka-{version}" / "libs"


def find_free_port(host: str = DEFAULT_HOST) -> int:
    """Return a TCP port that is free on *host* right now (the OS picks it).

    Another process may take it before the caller binds it; :meth:`LocalKafka.start` reports
    that case as :class:`PortInUseError`.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def find_java() -> str:
    """Path of the ``java`` executable (``$JAVA_HOME/bin/java``, else ``java`` on ``PATH``).

    Raises :class:`ToolMissingError` saying what to install when there is none.
    """
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise ToolMissingError(
            "Java not found: the local Kafka broker needs a Java 17 runtime. Install one "
            "(e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME, or set "
            f"{ENV_BOOTSTRAP} to use an existing Kafka cluster."
        )
    return found


def find_mvn() -> str:
    """Path of ``mvn``. Raises :class:`ToolMissingError` saying what to install when missing."""
    found = shutil.which("mvn")
    if found is None:
        raise ToolMissingError(
            "Maven (mvn) not found: it is needed once to fetch the Kafka jars. Install Apache "
            "Maven 3.8+ (e.g. `apt-get install maven`), or copy an already fetched "
            f"{libs_dir().parent} (with its {_FETCH_MARKER} file) from another machine, or set "
            f"{ENV_BOOTSTRAP} to use an existing Kafka cluster."
        )
    return found


def find_pom() -> Path:
    """Path of ``deploy/kafka/pom.xml``: ``$YTMAKER_KAFKA_POM``, else found from this module's
    location or from the current directory upwards."""
    raw = os.environ.get(ENV_POM, "").strip()
    if raw:
        pom = Path(raw).expanduser()
        if not pom.is_file():
            raise FetchError(f"{ENV_POM}={raw} does not exist")
        return pom.absolute()
    here = Path(__file__).resolve()
    for base in (*here.parents, Path.cwd(), *Path.cwd().parents):
        pom = base / "deploy" / "kafka" / "pom.xml"
        if pom.is_file():
            return pom
    raise FetchError(
        f"deploy/kafka/pom.xml not found (looked above {here} and {Path.cwd()}); "
        f"run from the ytmaker checkout or set {ENV_POM}"
    )


# --------------------------------------------------------------------------------------------
# Fetching the jars


def is_fetched(libs: Path | None = None, version: str = KAFKA_VERSION) -> bool:
    """True when the jars of *version* are complete in *libs* (marker file + server jar)."""
    libs = libs if libs is not None else libs_dir(version)
    return (libs.parent / _FETCH_MARKER).is_file() and (
        libs / f"kafka_2.13-{version}.jar"
    ).is_file()


def fetch(*, version: str = KAFKA_VERSION, libs: Path | None = None, quiet: bool = True) -> Path:
    """Make sure the Kafka jars are in the cache and return the libs directory.

    Skips Maven when a previous fetch completed (marker file). Safe to call from several
    processes at once (file lock). Maven downloads into a temporary directory that is renamed
    into place, so an interrupted fetch never leaves a half-filled libs directory behind.
    Raises :class:`ToolMissingError` (no mvn) or :class:`FetchError`.
    """
    libs = (libs if libs is not None else libs_dir(version)).absolute()
    if is_fetched(libs, version):
        return libs
    home = libs.parent
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_fetched(libs, version):
            return libs
        mvn = find_mvn()
        pom = find_pom()
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=home))
        try:
            cmd = [
                mvn,
                "-B",
                "-q" if quiet else "--no-transfer-progress",
                "-Dstyle.color=never",
                "-f",
                str(pom),
                f"-Dkafka.version={version}",
                f"-Dkafka.libs.dir={staging}",
                "package",
            ]
            if not quiet:
                print(f"fetching Kafka {version} jars into {libs} ...", file=sys.stderr)
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if quiet else sys.stderr,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout or "").strip().splitlines()[-25:])
                raise FetchError(
                    f"Maven could not fetch Kafka {version} (exit {proc.returncode}; is the "
                    f"Maven repository reachable?):\n{shlex.join(cmd)}\n{tail}"
                )
            if not (staging / f"kafka_2.13-{version}.jar").is_file():
                raise FetchError(f"Maven succeeded but kafka_2.13-{version}.jar is missing")
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
            jars = sorted(p.name for p in libs.glob("*.jar"))
            (home / _FETCH_MARKER).write_text(
                f"kafka {version}\n{len(jars)} jars\n" + "".join(f"{j}\n" for j in jars)
            )
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return libs


# --------------------------------------------------------------------------------------------
# Probing a broker


def _port_accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


async def aprobe(bootstrap_servers: str, timeout: float = 10.0) -> None:
    """Bootstrap an admin client, describe the cluster and list topics; raise on any failure.

    Succeeds only when the cluster has at least one live (unfenced) broker.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="ytmaker-devkafka-probe",
        request_timeout_ms=max(1000, int(timeout * 1000)),
    )
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            info = await admin.describe_cluster()
            if not info.get("brokers"):
                raise BrokerStartError(f"{bootstrap_servers}: cluster has no live broker yet")
            await admin.list_topics()
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def probe(bootstrap_servers: str, timeout: float = 10.0) -> bool:
    """Blocking :func:`aprobe`: True when a client can bootstrap from *bootstrap_servers*.

    Runs its own event loop in a worker thread, so it may be called from inside a running
    event loop (it then blocks that loop for at most *timeout* seconds).
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="devkafka-probe") as pool:
        future = pool.submit(asyncio.run, aprobe(bootstrap_servers, timeout))
        try:
            future.result()
        except Exception:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Process helpers


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie is dead


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    """Wait until *pid* (not necessarily our child) is gone; True when it is."""
    deadline = time.monotonic() + timeout
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (OSError, AttributeError):
        fd = -1
    try:
        while _pid_alive(pid):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if fd >= 0:
                select.select([fd], [], [], min(left, 1.0))
            else:
                time.sleep(min(left, 0.1))
        return True
    finally:
        if fd >= 0:
            os.close(fd)


def rss_bytes(pid: int) -> int | None:
    """Resident set size of *pid* in bytes (``VmRSS`` of ``/proc/<pid>/status``), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _new_cluster_id() -> str:
    """A Kafka cluster id: base64url of a random UUID, no padding, not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _prop_escape(value: str) -> str:
    return value.replace("\\", "\\\\")


# --------------------------------------------------------------------------------------------
# The broker

_owned: set[LocalKafka] = set()


@atexit.register
def _stop_owned_brokers() -> None:
    for broker in list(_owned):
        with contextlib.suppress(Exception):
            broker.stop(timeout=30.0)


class LocalKafka:
    """One local single-node KRaft broker on one data directory.

    Layout of *data_dir*: ``config/`` (server.properties, log4j.properties, written at every
    start), ``data/`` (the Kafka log directory with ``meta.properties``), ``logs/``
    (``server.log`` and the JVM's stdout/stderr in ``kafka.out``) and ``kafka.pid``.

    Arguments left ``None`` come from the environment (see the module docstring). With
    *honour_env* (default) and ``KAFKA_BOOTSTRAP_SERVERS`` set, :meth:`start` starts nothing
    and :attr:`bootstrap_servers` is that cluster; pass ``honour_env=False`` to always run a
    local broker (e.g. for crash/restart tests). With *detach* the broker outlives this Python
    process; otherwise it is stopped at interpreter exit if the caller forgot to.

    A stopped or killed broker can be started again with :meth:`start`, on the same data
    directory and ports.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        host: str = DEFAULT_HOST,
        libs: Path | None = None,
        heap_opts: Sequence[str] | None = None,
        honour_env: bool = True,
        detach: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute() if data_dir else default_data_dir()
        if "," in str(self.data_dir):
            raise DevKafkaError(f"data directory must not contain ',': {self.data_dir}")
        self.port = port if port is not None else _env_port(ENV_PORT, DEFAULT_PORT)
        self.controller_port = (
            controller_port
            if controller_port is not None
            else _env_port(ENV_CONTROLLER_PORT, DEFAULT_CONTROLLER_PORT)
        )
        if self.port == self.controller_port:
            raise DevKafkaError(f"broker and controller port are both {self.port}")
        self.host = host
        self.libs = libs
        self.heap_opts = tuple(heap_opts) if heap_opts is not None else default_heap_opts()
        self.honour_env = honour_env
        self.detach = detach
        self._external: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.last_startup_seconds: float | None = None
        """Seconds of the last :meth:`start` (format + JVM start + first successful probe)."""
        self.last_format_seconds: float | None = None
        """Seconds the storage format took at the last start (0.0 when already formatted)."""

    # -- paths and properties ------------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        return self.data_dir / "config"

    @property
    def log_dir(self) -> Path:
        """Directory of the broker's own log files (``server.log``, ``kafka.out``)."""
        return self.data_dir / "logs"

    @property
    def kafka_data_dir(self) -> Path:
        """Kafka's ``log.dirs``: the topic partitions and ``meta.properties``."""
        return self.data_dir / "data"

    @property
    def server_properties(self) -> Path:
        return self.config_dir / "server.properties"

    @property
    def log4j_properties(self) -> Path:
        return self.config_dir / "log4j.properties"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / _PID_FILE

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.log_dir / "kafka.out"

    @property
    def is_external(self) -> bool:
        """True after :meth:`start` chose the cluster of ``KAFKA_BOOTSTRAP_SERVERS``."""
        return self._external is not None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` clients bootstrap from (the external cluster when :attr:`is_external`)."""
        return self._external if self._external is not None else f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Pid of the running broker of this data directory (ours or another process'), or None."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        pid = _read_pid(self.pid_file)
        if pid is not None and self._is_our_broker(pid):
            return pid
        return None

    def _is_our_broker(self, pid: int) -> bool:
        if not _pid_alive(pid):
            return False
        cmd = _cmdline(pid)
        if cmd is None:  # no /proc: trust the pid file
            return True
        return _KAFKA_MAIN in cmd and str(self.server_properties) in cmd

    def is_running(self) -> bool:
        """True when a broker process of this data directory is alive (not external ones)."""
        return self.pid is not None

    def is_reachable(self, timeout: float = 10.0) -> bool:
        """True when a client can bootstrap from :attr:`bootstrap_servers` (see :func:`probe`)."""
        return probe(self.bootstrap_servers, timeout)

    def rss_bytes(self) -> int | None:
        """Resident memory of the broker's JVM in bytes, or None when it does not run."""
        pid = self.pid
        return rss_bytes(pid) if pid is not None else None

    # -- configuration ---------------------------------------------------------------------

    def server_config(self) -> dict[str, str]:
        """The broker configuration written to ``server.properties``."""
        host, port, cport = self.host, self.port, self.controller_port
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{cport}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.kafka_data_dir),
            # single node: every internal topic has one replica, transactions work
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "num.partitions": "3",
            # event sourcing: keep events unless a topic sets its own retention
            "log.retention.ms": "-1",
            # after a crash (SIGKILL) the restarted node cannot register until the session of
            # its previous incarnation expires: 5s instead of 9s (heartbeats every second)
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "5000",
            # small footprint, fast start
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "num.recovery.threads.per.data.dir": "2",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "log.segment.bytes": str(256 * 1024 * 1024),
        }

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        lines = ["# Written by ytmaker_shared.devkafka at every start; edits are lost."]
        lines += [f"{k}={_prop_escape(v)}" for k, v in self.server_config().items()]
        self.server_properties.write_text("\n".join(lines) + "\n")
        server_log = _prop_escape(str(self.server_log))
        self.log4j_properties.write_text(
            "# Written by ytmaker_shared.devkafka at every start; edits are lost.\n"
            "log4j.rootLogger=INFO, server\n"
            "log4j.appender.server=org.apache.log4j.RollingFileAppender\n"
            f"log4j.appender.server.File={server_log}\n"
            "log4j.appender.server.MaxFileSize=20MB\n"
            "log4j.appender.server.MaxBackupIndex=3\n"
            "log4j.appender.server.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka.request.logger=WARN\n"
            "log4j.logger.kafka.authorizer.logger=WARN\n"
            "log4j.logger.state.change.logger=WARN\n"
            "log4j.logger.org.apache.kafka.clients=WARN\n"
        )

    def _java_cmd(self, java: str, libs: Path, main: str, *args: str) -> list[str]:
        return [
            java,
            *self.heap_opts,
            *_JVM_PERFORMANCE_OPTS,
            f"-Dlog4j.configuration={self.log4j_properties.as_uri()}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            str(libs / "*"),
            main,
            *args,
        ]

    def is_formatted(self) -> bool:
        """True when the storage of this data directory is formatted (``meta.properties``)."""
        return (self.kafka_data_dir / "meta.properties").is_file()

    def _format(self, java: str, libs: Path) -> None:
        cmd = self._java_cmd(
            java,
            libs,
            _STORAGE_TOOL_MAIN,
            "format",
            "--cluster-id",
            _new_cluster_id(),
            "--config",
            str(self.server_properties),
            "--ignore-formatted",
        )
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or not self.is_formatted():
            raise BrokerStartError(
                f"formatting {self.kafka_data_dir} failed (exit {proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}\n{_tail(self.server_log)}"
            )

    def _check_ports_free(self) -> None:
        for name, port in (("broker", self.port), ("controller", self.controller_port)):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.host, port))
                except OSError as exc:
                    env = ENV_PORT if name == "broker" else ENV_CONTROLLER_PORT
                    raise PortInUseError(
                        f"{name} port {self.host}:{port} is already in use ({exc.strerror}); "
                        f"stop what uses it or choose another port ({env})"
                    ) from None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> LocalKafka:
        """Start the broker and block until a client can bootstrap from it; return self.

        Fetches the jars first when needed (not counted in *timeout*). Formats the storage only
        when the data directory is not formatted yet. Does nothing when this handle's broker
        already runs. With *honour_env* and ``KAFKA_BOOTSTRAP_SERVERS`` set, starts nothing.

        Raises :class:`ToolMissingError`, :class:`FetchError`, :class:`PortInUseError`,
        :class:`BrokerAlreadyRunningError` (another process runs this data directory) or
        :class:`BrokerStartError` (died or not ready before the deadline; the process is then
        killed and the message holds the tail of its log).
        """
        if self.honour_env:
            external = external_bootstrap_servers()
            if external is not None:
                self._external = external
                return self
        self._external = None
        if self._proc is not None and self._proc.poll() is None:
            return self
        other = self.pid
        if other is not None:
            raise BrokerAlreadyRunningError(
                f"a broker (pid {other}) already runs on {self.data_dir} "
                f"at {self.bootstrap_servers}"
            )
        java = find_java()
        libs = self.libs if self.libs is not None else fetch()
        if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            raise FetchError(f"{libs} holds no kafka_2.13-{KAFKA_VERSION}.jar")
        self._check_ports_free()

        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if self.is_formatted():
            self.last_format_seconds = 0.0
        else:
            self._format(java, libs)
            self.last_format_seconds = time.monotonic() - began

        cmd = self._java_cmd(java, libs, _KAFKA_MAIN, str(self.server_properties))
        with open(self.stdout_log, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        if not self.detach:
            _owned.add(self)
        try:
            self._wait_ready(began + timeout)
        except BaseException:
            self.kill()
            raise
        self.last_startup_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        while True:
            code = proc.poll()
            if code is not None:
                raise BrokerStartError(
                    f"Kafka exited with code {code} during start-up ({self.data_dir}):\n"
                    f"{_tail(self.stdout_log, 15)}\n{_tail(self.server_log)}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrokerStartError(
                    f"no client could bootstrap from {self.bootstrap_servers} before the "
                    f"deadline ({self.data_dir}):\n{_tail(self.server_log)}"
                )
            if _port_accepts(self.host, self.port, timeout=min(1.0, left)) and probe(
                self.bootstrap_servers, timeout=min(10.0, max(1.0, left))
            ):
                return
            # wait a little, returning at once if the process dies meanwhile
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic())))

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the broker process exits (or *timeout*); return its exit code or None."""
        if self._proc is not None:
            try:
                return self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        pid = self.pid
        if pid is None:
            return None
        _wait_pid_gone(pid, timeout if timeout is not None else float("inf"))
        return None

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the broker cleanly: SIGTERM, wait up to *timeout* seconds, then SIGKILL.

        Works for a broker started by another process too (found via the pid file, checked
        against the process' command line). No-op when nothing runs or :attr:`is_external`.
        """
        _owned.discard(self)
        if self._external is not None:
            return
        pid = self.pid
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                self._signal(pid, signal.SIGKILL)
                self._wait_gone(pid, 30.0)
        self._reap()
        self._remove_pid_file()

    def kill(self) -> None:
        """Kill the broker with SIGKILL (a crash, for tests) and wait until it is gone."""
        _owned.discard(self)
        if self._external is not None:
            raise DevKafkaError("cannot kill an external cluster (KAFKA_BOOTSTRAP_SERVERS)")
        pid = self.pid
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            self._wait_gone(pid, 30.0)
        self._reap()
        self._remove_pid_file()

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            try:
                os.killpg(pid, sig)  # the broker leads its own process group
            except (ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        return _wait_pid_gone(pid, timeout)

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5.0)

    def _remove_pid_file(self) -> None:
        pid = _read_pid(self.pid_file)
        if pid is None or not self._is_our_broker(pid):
            self.pid_file.unlink(missing_ok=True)

    @property
    def returncode(self) -> int | None:
        """Exit code of the last broker process this handle started (None while it runs)."""
        return self._proc.poll() if self._proc is not None else None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"LocalKafka(data_dir={str(self.data_dir)!r}, "
            f"bootstrap_servers={self.bootstrap_servers!r}, pid={self.pid})"
        )


def ensure_broker(
    data_dir: Path | str | None = None,
    *,
    port: int | None = None,
    controller_port: int | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    detach: bool = False,
) -> tuple[str, LocalKafka | None]:
    """Return ``(bootstrap_servers, handle)`` of a Kafka cluster to use.

    When ``KAFKA_BOOTSTRAP_SERVERS`` is set, starts nothing and returns ``(its value, None)``.
    Otherwise starts a :class:`LocalKafka` (arguments as for it) and returns its bootstrap
    servers and the handle: the caller owns it and must call ``handle.stop()``.
    """
    external = external_bootstrap_servers()
    if external is not None:
        return external, None
    broker = LocalKafka(
        data_dir,
        port=port,
        controller_port=controller_port,
        honour_env=False,
        detach=detach,
    )
    broker.start(timeout=timeout)
    return broker.bootstrap_servers, broker


@dataclass(frozen=True)
class StartupMeasurement:
    """Start-up cost of a local broker (jar fetch excluded)."""

    cold_seconds: float
    """First start on an empty data directory: format + JVM start + first successful probe."""
    format_seconds: float
    """The storage-format part of :attr:`cold_seconds`."""
    warm_seconds: float
    """Restart on the same, already formatted data directory after a clean stop."""
    stop_seconds: float
    """Clean stop (SIGTERM until the process is gone) after the cold start."""
    rss_bytes_cold: int | None
    """VmRSS of the broker JVM right after the cold start."""
    rss_bytes_warm: int | None
    """VmRSS of the broker JVM right after the warm restart."""

    def describe(self) -> str:
        def mib(value: int | None) -> str:
            return "?" if value is None else f"{value / 2**20:.0f} MiB"

        return (
            f"cold start {self.cold_seconds:.2f}s (format {self.format_seconds:.2f}s), "
            f"clean stop {self.stop_seconds:.2f}s, warm restart {self.warm_seconds:.2f}s; "
            f"RSS after start {mib(self.rss_bytes_cold)} (cold), {mib(self.rss_bytes_warm)} "
            "(warm)"
        )


def measure_startup(
    base_dir: Path | None = None, *, timeout: float = DEFAULT_START_TIMEOUT
) -> StartupMeasurement:
    """Start a throw-away broker on free ports and a temporary data directory twice.

    Measures the cold start (empty data directory), the clean stop and the warm restart.
    Fetches the jars first (not measured). The temporary directory is created in *base_dir*
    (default: the system temp dir) and removed afterwards.
    """
    fetch()
    with tempfile.TemporaryDirectory(prefix="devkafka-measure-", dir=base_dir) as tmp:
        broker = LocalKafka(
            Path(tmp),
            port=find_free_port(),
            controller_port=find_free_port(),
            honour_env=False,
        )
        try:
            broker.start(timeout=timeout)
            cold = broker.last_startup_seconds or 0.0
            fmt = broker.last_format_seconds or 0.0
            rss_cold = broker.rss_bytes()
            began = time.monotonic()
            broker.stop()
            stopped = time.monotonic() - began
            broker.start(timeout=timeout)
            warm = broker.last_startup_seconds or 0.0
            rss_warm = broker.rss_bytes()
        finally:
            broker.stop()
    return StartupMeasurement(cold, fmt, warm, stopped, rss_cold, rss_warm)


# --------------------------------------------------------------------------------------------
# Command line


class _Interrupted(Exception):
    pass


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`_Interrupted` while inside the block."""
    previous = {
        sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(message: str, stream: TextIO = sys.stdout) -> None:
    print(message, file=stream, flush=True)


def _cmd_start(args: argparse.Namespace) -> int:
    external = external_bootstrap_servers()
    if external is not None:
        _say(f"{ENV_BOOTSTRAP}={external} is set: using that cluster, nothing started")
        return 0
    broker = LocalKafka(detach=True, honour_env=False)
    pid = broker.pid
    if pid is not None:
        _say(f"already running: pid {pid}, bootstrap {broker.bootstrap_servers}, {broker.data_dir}")
        return 0
    broker.start(timeout=args.timeout)
    _say(
        f"Kafka {KAFKA_VERSION} started: pid {broker.pid}, bootstrap {broker.bootstrap_servers}, "
        f"data {broker.data_dir}, logs {broker.server_log} "
        f"({broker.last_startup_seconds:.1f}s)"
    )
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    broker = LocalKafka(honour_env=False)
    pid = broker.pid
    if pid is None:
        broker.pid_file.unlink(missing_ok=True)
        _say(f"not running ({broker.data_dir})")
        return 0
    began = time.monotonic()
    broker.stop(timeout=args.timeout)
    _say(f"stopped pid {pid} ({time.monotonic() - began:.1f}s)")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    broker = LocalKafka(honour_env=False)
    external = external_bootstrap_servers()
    if external is not None:
        _say(f"note: {ENV_BOOTSTRAP}={external} is set; clients use that cluster")
    pid = broker.pid
    if pid is None:
        _say(f"not running ({broker.data_dir})")
        return 3
    rss = broker.rss_bytes()
    mem = f", RSS {rss / 2**20:.0f} MiB" if rss is not None else ""
    if broker.is_reachable(timeout=args.timeout):
        _say(f"running: pid {pid}, bootstrap {broker.bootstrap_servers}{mem}, {broker.data_dir}")
        return 0
    _say(f"pid {pid} runs but {broker.bootstrap_servers} does not answer ({broker.server_log})")
    return 1


def _cmd_run(args: argparse.Namespace) -> int:
    external = external_bootstrap_servers()
    if external is not None:
        _say(f"{ENV_BOOTSTRAP}={external} is set: using that cluster, nothing started")
        return 0
    broker = LocalKafka(honour_env=False)
    with _interruptible():
        try:
            broker.start(timeout=args.timeout)
            _say(
                f"Kafka {KAFKA_VERSION} running: pid {broker.pid}, bootstrap "
                f"{broker.bootstrap_servers}, logs {broker.server_log}; Ctrl-C stops it"
            )
            code = broker.wait()
        except _Interrupted as why:
            _say(f"{why}: stopping Kafka ...")
            broker.stop()
            _say("stopped")
            return 0
    broker.stop()
    _say(f"Kafka exited on its own with code {code}; see {broker.server_log}", sys.stderr)
    return 1


def _cmd_fetch(args: argparse.Namespace) -> int:
    libs = fetch(quiet=not args.verbose)
    _say(f"Kafka {KAFKA_VERSION} jars in {libs}")
    return 0


def _cmd_measure(args: argparse.Namespace) -> int:
    _say(measure_startup(timeout=args.timeout).describe())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m ytmaker_shared.devkafka",
        description=f"Local single-node Apache Kafka {KAFKA_VERSION} broker (KRaft).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text, timeout in (
        ("fetch", _cmd_fetch, "download the Kafka jars (once)", 0.0),
        ("start", _cmd_start, "start in the background", DEFAULT_START_TIMEOUT),
        ("stop", _cmd_stop, "stop cleanly (SIGTERM, then SIGKILL)", DEFAULT_STOP_TIMEOUT),
        ("status", _cmd_status, "is it running and reachable?", 10.0),
        ("run", _cmd_run, "run in the foreground until Ctrl-C", DEFAULT_START_TIMEOUT),
        ("measure", _cmd_measure, "measure start-up time and memory", DEFAULT_START_TIMEOUT),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.set_defaults(func=func)
        if name == "fetch":
            cmd.add_argument("-v", "--verbose", action="store_true", help="show Maven output")
        else:
            cmd.add_argument("--timeout", type=float, default=timeout, help="seconds")
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except DevKafkaError as exc:
        _say(f"error: {exc}", sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

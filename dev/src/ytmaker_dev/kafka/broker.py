"""The broker process: :class:`LocalKafka` starts, waits for, stops and kills one local
single-node KRaft broker; :func:`ensure_broker` picks the cluster a caller should use."""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ytmaker_shared.kafka.connection import aiokafka_connection
from ytmaker_shared.settings import ServiceSettings

from .errors import (
    BrokerAlreadyRunningError,
    BrokerStartError,
    DevKafkaError,
    FetchError,
    PortInUseError,
)
from .files import KAFKA_MAIN, SCRAM_ADMIN, SCRAM_MECHANISM, BrokerFiles
from .jars import fetch
from .probe import port_accepts, probe
from .processes import cmdline, pid_alive, read_pid, rss_bytes, tail, wait_pid_gone
from .settings import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    ENV_CONTROLLER_PORT,
    ENV_PORT,
    KAFKA_VERSION,
    default_data_dir,
    default_heap_opts,
    env_port,
    external_bootstrap_servers,
    find_java,
)

_owned: set[LocalKafka] = set()


@atexit.register
def _stop_owned_brokers() -> None:
    for broker in list(_owned):
        with contextlib.suppress(Exception):
            broker.stop(timeout=30.0)


class LocalKafka(BrokerFiles):
    """One local single-node KRaft broker on one data directory.

    Layout of *data_dir*: see :class:`~ytmaker_dev.kafka.files.BrokerFiles`.

    Arguments left ``None`` come from the environment (see the package docstring). With
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
        scram_users: Mapping[str, str] | None = None,
        tls: bool = False,
    ) -> None:
        directory = Path(data_dir).expanduser().absolute() if data_dir else default_data_dir()
        if "," in str(directory):
            raise DevKafkaError(f"data directory must not contain ',': {directory}")
        port = port if port is not None else env_port(ENV_PORT, DEFAULT_PORT)
        controller_port = (
            controller_port
            if controller_port is not None
            else env_port(ENV_CONTROLLER_PORT, DEFAULT_CONTROLLER_PORT)
        )
        if port == controller_port:
            raise DevKafkaError(f"broker and controller port are both {port}")
        super().__init__(
            directory,
            host=host,
            port=port,
            controller_port=controller_port,
            heap_opts=heap_opts if heap_opts is not None else default_heap_opts(),
            scram_users=scram_users,
            tls=tls,
        )
        self.libs = libs
        self.honour_env = honour_env
        self.detach = detach
        self._external: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.last_startup_seconds: float | None = None
        """Seconds of the last :meth:`start` (format + JVM start + first successful probe)."""
        self.last_format_seconds: float | None = None
        """Seconds the storage format took at the last start (0.0 when already formatted)."""

    # -- state ---------------------------------------------------------------------------

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
        pid = read_pid(self.pid_file)
        if pid is not None and self._is_our_broker(pid):
            return pid
        return None

    def _is_our_broker(self, pid: int) -> bool:
        if not pid_alive(pid):
            return False
        cmd = cmdline(pid)
        if cmd is None:  # no /proc: trust the pid file
            return True
        return KAFKA_MAIN in cmd and str(self.server_properties) in cmd

    def is_running(self) -> bool:
        """True when a broker process of this data directory is alive (not external ones)."""
        return self.pid is not None

    def client_settings(self, user: str = SCRAM_ADMIN) -> ServiceSettings:
        """The settings of a client of this broker, signed in as `user` when it has users."""
        if self.scram_users is None or self.is_external:
            return ServiceSettings(kafka_bootstrap_servers=self.bootstrap_servers)
        return ServiceSettings(
            kafka_bootstrap_servers=self.bootstrap_servers,
            kafka_security_protocol=self.security_protocol,
            kafka_sasl_mechanism=SCRAM_MECHANISM,
            kafka_username=user,
            kafka_password=self.scram_users[user],
            kafka_ca_file=self.tls.ca_file if self.tls is not None else None,
        )

    def client_env(self, user: str = SCRAM_ADMIN) -> dict[str, str]:
        """`client_settings(user)` as the environment a service process reads them from."""
        settings = self.client_settings(user)
        env = {"KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}
        if settings.kafka_password is not None:
            env |= {
                "YTMAKER_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
                "YTMAKER_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
                "YTMAKER_KAFKA_USERNAME": str(settings.kafka_username),
                "YTMAKER_KAFKA_PASSWORD": settings.kafka_password.get_secret_value(),
            }
        if settings.kafka_ca_file is not None:
            env["YTMAKER_KAFKA_CA_FILE"] = str(settings.kafka_ca_file)
        return env

    def admin_options(self) -> dict[str, Any]:
        """aiokafka's keyword arguments, but the address, for a client of the super user."""
        options = aiokafka_connection(self.client_settings())
        del options["bootstrap_servers"]
        return options

    def is_reachable(self, timeout: float = 10.0) -> bool:
        """True when a client can bootstrap from :attr:`bootstrap_servers` (see :func:`probe`)."""
        return probe(self.bootstrap_servers, timeout, **self.admin_options())

    def rss_bytes(self) -> int | None:
        """Resident memory of the broker's JVM in bytes, or None when it does not run."""
        pid = self.pid
        return rss_bytes(pid) if pid is not None else None

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
        if self.tls is not None:
            self.tls.make(java, self.host)
        self._write_config()
        if self.is_formatted():
            self.last_format_seconds = 0.0
        else:
            self._format(java, libs)
            self.last_format_seconds = time.monotonic() - began

        cmd = self._java_cmd(java, libs, KAFKA_MAIN, str(self.server_properties))
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
                    f"{tail(self.stdout_log, 15)}\n{tail(self.server_log)}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrokerStartError(
                    f"no client could bootstrap from {self.bootstrap_servers} before the "
                    f"deadline ({self.data_dir}):\n{tail(self.server_log)}"
                )
            if port_accepts(self.host, self.port, timeout=min(1.0, left)) and probe(
                self.bootstrap_servers, timeout=min(10.0, max(1.0, left)), **self.admin_options()
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
        wait_pid_gone(pid, timeout if timeout is not None else float("inf"))
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
        return wait_pid_gone(pid, timeout)

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5.0)

    def _remove_pid_file(self) -> None:
        pid = read_pid(self.pid_file)
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

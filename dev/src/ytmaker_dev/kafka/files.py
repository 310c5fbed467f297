"""A local broker's data directory and configuration: where its files go, the
``server.properties`` and ``log4j.properties`` written at every start, the JVM command line,
and formatting the storage once.

:class:`BrokerFiles` holds no process; :class:`~ytmaker_dev.kafka.broker.LocalKafka` adds it.
"""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from .errors import BrokerStartError
from .processes import tail
from .tls import BrokerTls

# The JVM options of the official kafka-server-start.sh / kafka-run-class.sh.
JVM_PERFORMANCE_OPTS: Final = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)
KAFKA_MAIN: Final = "kafka.Kafka"
STORAGE_TOOL_MAIN: Final = "kafka.tools.StorageTool"
PID_FILE: Final = "kafka.pid"
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
SCRAM_ADMIN: Final = "admin"
_PLAIN_WORD: Final = re.compile(r"[A-Za-z0-9_-]+")
_HEADER: Final = "# Written by ytmaker_dev.kafka at every start; edits are lost."


def new_cluster_id() -> str:
    """A Kafka cluster id: base64url of a random UUID, no padding, not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _prop_escape(value: str) -> str:
    return value.replace("\\", "\\\\")


class BrokerFiles:
    """The files and configuration of one single-node KRaft broker on *data_dir*.

    Layout of *data_dir*: ``config/`` (server.properties, log4j.properties, written at every
    start), ``data/`` (the Kafka log directory with ``meta.properties``), ``logs/``
    (``server.log`` and the JVM's stdout/stderr in ``kafka.out``) and ``kafka.pid``.

    The caller passes resolved, checked values (an absolute *data_dir*, two different ports).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str,
        port: int,
        controller_port: int,
        heap_opts: Sequence[str],
        scram_users: Mapping[str, str] | None = None,
        tls: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.controller_port = controller_port
        self.heap_opts = tuple(heap_opts)
        if scram_users is not None and SCRAM_ADMIN not in scram_users:
            raise ValueError(f"a broker with SCRAM users needs the super user {SCRAM_ADMIN!r}")
        for word in (w for user in (scram_users or {}).items() for w in user):
            if not _PLAIN_WORD.fullmatch(word):  # they go into the storage tool's arguments
                raise ValueError("SCRAM user names and passwords are letters, digits, - and _")
        self.scram_users = dict(scram_users) if scram_users is not None else None
        if tls and scram_users is None:
            raise ValueError("a broker with TLS wants SCRAM users too (SASL_SSL)")
        self.tls = BrokerTls(data_dir / "tls") if tls else None

    # -- paths ---------------------------------------------------------------------------

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
        return self.data_dir / PID_FILE

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.log_dir / "kafka.out"

    # -- configuration ---------------------------------------------------------------------

    @property
    def security_protocol(self) -> str:
        """What a client speaks to the broker's port: SASL_PLAINTEXT with SCRAM users,
        SASL_SSL with TLS too."""
        if self.scram_users is None:
            return "PLAINTEXT"
        return "SASL_SSL" if self.tls is not None else "SASL_PLAINTEXT"

    def server_config(self) -> dict[str, str]:
        """The broker configuration written to ``server.properties``."""
        host, port, cport = self.host, self.port, self.controller_port
        listener = self.security_protocol
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{cport}",
            "listeners": f"{listener}://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"{listener}://{host}:{port}",
            "listener.security.protocol.map": f"{listener}:{listener},CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": listener,
            **self._scram_config(),
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
            # no no-op record in the metadata log twice a second (KIP-835's liveness signal,
            # for multi-node quorums): a third of the idle broker's CPU (decision 0098)
            "metadata.max.idle.interval.ms": "0",
            # small footprint, fast start
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "num.recovery.threads.per.data.dir": "2",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "log.segment.bytes": str(256 * 1024 * 1024),
        }

    def _scram_config(self) -> dict[str, str]:
        """Users and ACLs, as a production cluster has them (docs/decisions/0122): clients
        sign in with SCRAM-SHA-512 and may do only what an ACL allows. The super users are
        `admin` and the node itself on its own controller port (whose plain TCP peer is
        ANONYMOUS: KRaft keeps SCRAM credentials in the metadata that port carries)."""
        if self.scram_users is None:
            return {}
        password = self.scram_users[SCRAM_ADMIN]
        listener = self.security_protocol.lower()
        return {
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.{listener}.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{SCRAM_ADMIN}" password="{password}";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{SCRAM_ADMIN};User:ANONYMOUS",
            **(self.tls.server_config(listener) if self.tls is not None else {}),
        }

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        lines = [_HEADER]
        lines += [f"{k}={_prop_escape(v)}" for k, v in self.server_config().items()]
        self.server_properties.write_text("\n".join(lines) + "\n")
        server_log = _prop_escape(str(self.server_log))
        self.log4j_properties.write_text(
            f"{_HEADER}\n"
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
            *JVM_PERFORMANCE_OPTS,
            f"-Dlog4j.configuration={self.log4j_properties.as_uri()}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            str(libs / "*"),
            main,
            *args,
        ]

    # -- storage ---------------------------------------------------------------------------

    def is_formatted(self) -> bool:
        """True when the storage of this data directory is formatted (``meta.properties``)."""
        return (self.kafka_data_dir / "meta.properties").is_file()

    def _format(self, java: str, libs: Path) -> None:
        cmd = self._java_cmd(
            java,
            libs,
            STORAGE_TOOL_MAIN,
            "format",
            "--cluster-id",
            new_cluster_id(),
            "--config",
            str(self.server_properties),
            "--ignore-formatted",
            *(
                arg
                for name, password in (self.scram_users or {}).items()
                for arg in ("--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]")
            ),
        )
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or not self.is_formatted():
            raise BrokerStartError(
                f"formatting {self.kafka_data_dir} failed (exit {proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}\n{tail(self.server_log)}"
            )

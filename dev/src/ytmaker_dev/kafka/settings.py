"""The local broker's settings: the pinned Kafka version, the environment it reads (see the
package docstring), and where the tools it needs (java, mvn, the fetch pom) are."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Final

from .errors import DevKafkaError, FetchError, ToolMissingError

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

FETCH_MARKER: Final = ".fetched"
"""The file beside ``libs/`` that says a fetch completed."""


def external_bootstrap_servers() -> str | None:
    """Return ``KAFKA_BOOTSTRAP_SERVERS`` when set and not blank, else ``None``."""
    value = os.environ.get(ENV_BOOTSTRAP, "").strip()
    return value or None


def env_port(name: str, default: int) -> int:
    """The port in the environment variable *name*, or *default* when it is unset or blank.

    Raises :class:`DevKafkaError` when the value is not a port number (1-65535).
    """
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
            f"{libs_dir().parent} (with its {FETCH_MARKER} file) from another machine, or set "
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

"""A real, local, single-node Apache Kafka broker (KRaft) for development and tests.

No Docker: the broker is the official Kafka server jar run by a local Java 17 runtime. The jars
are fetched once with Maven (``deploy/kafka/pom.xml``) into a cache outside the source tree.

Modules: ``settings`` (version, environment, tools), ``errors``, ``jars`` (the Maven fetch),
``probe`` (can a client bootstrap?), ``processes`` (pids, waiting, memory), ``files`` (the data
directory and configuration), ``broker`` (:class:`LocalKafka`, :func:`ensure_broker`),
``measure`` (start-up cost) and ``cli``.

Command line (``python -m ytmaker_dev.kafka COMMAND``):

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
* ``YTMAKER_KAFKA_POM``             path of the fetch pom, when this package is not run from the
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
* Every error raised is a :class:`DevKafkaError`.

The broker is a combined KRaft node (broker + controller, node id 1) listening on 127.0.0.1 only,
with replication factors of 1 (so transactions and consumer groups work on a single node),
``auto.create.topics.enable=false``, ``num.partitions=3`` and infinite default retention. Its
storage is formatted only when the data directory has no ``meta.properties`` yet, so a restart
on the same data directory keeps every message.
"""

from .broker import LocalKafka, ensure_broker
from .cli import main
from .errors import (
    BrokerAlreadyRunningError,
    BrokerStartError,
    DevKafkaError,
    FetchError,
    PortInUseError,
    ToolMissingError,
)
from .jars import fetch, is_fetched
from .measure import StartupMeasurement, measure_startup
from .probe import aprobe, probe
from .processes import rss_bytes
from .settings import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_HEAP_OPTS,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    ENV_BOOTSTRAP,
    ENV_CACHE,
    ENV_CONTROLLER_PORT,
    ENV_DATA_DIR,
    ENV_HEAP_OPTS,
    ENV_POM,
    ENV_PORT,
    KAFKA_VERSION,
    cache_root,
    default_data_dir,
    default_heap_opts,
    external_bootstrap_servers,
    find_java,
    find_mvn,
    find_pom,
    libs_dir,
)

__all__ = [
    "DEFAULT_CONTROLLER_PORT",
    "DEFAULT_HEAP_OPTS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "ENV_BOOTSTRAP",
    "ENV_CACHE",
    "ENV_CONTROLLER_PORT",
    "ENV_DATA_DIR",
    "ENV_HEAP_OPTS",
    "ENV_POM",
    "ENV_PORT",
    "KAFKA_VERSION",
    "BrokerAlreadyRunningError",
    "BrokerStartError",
    "DevKafkaError",
    "FetchError",
    "LocalKafka",
    "PortInUseError",
    "StartupMeasurement",
    "ToolMissingError",
    "aprobe",
    "cache_root",
    "default_data_dir",
    "default_heap_opts",
    "ensure_broker",
    "external_bootstrap_servers",
    "fetch",
    "find_java",
    "find_mvn",
    "find_pom",
    "is_fetched",
    "libs_dir",
    "main",
    "measure_startup",
    "probe",
    "rss_bytes",
]

"""The command line, ``python -m ytmaker_dev.kafka COMMAND`` (commands: see the package
docstring). Exit codes: 0 done, 1 and 3 as ``status`` documents, 2 on any
:class:`DevKafkaError`."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import TextIO

from .broker import LocalKafka
from .errors import DevKafkaError
from .jars import fetch
from .measure import measure_startup
from .settings import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    ENV_BOOTSTRAP,
    KAFKA_VERSION,
    external_bootstrap_servers,
)


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
        prog="python -m ytmaker_dev.kafka",
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

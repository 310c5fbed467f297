"""What every command shares: where the gateway and Kafka are, the token, the consoles.

Options come from the command line, else the environment (`YTMAKER_URL`, `YTMAKER_TOKEN`,
`KAFKA_BOOTSTRAP_SERVERS`, `YTMAKER_TOPIC_PREFIX`), else the defaults of a local `make run`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console

from ytmaker_shared.topics import Topics

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


@dataclass
class Cli:
    url: str = DEFAULT_URL
    token: str | None = None
    bootstrap: str = DEFAULT_BOOTSTRAP
    prefix: str = ""
    # Text from the log and the gateway (messages, keys, titles, errors) is printed as it
    # is: rich's markup (`[/x]` raised MarkupError, `[bold]` vanished) and emoji codes
    # (`:thumbs_up:`) are off; styles are given as styles, never inside a string.
    out: Console = field(default_factory=lambda: _console(stderr=False))
    err: Console = field(default_factory=lambda: _console(stderr=True))

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def json(self, value: Any) -> None:
        """One JSON document (or JSON Lines record) on stdout, nothing else."""
        sys.stdout.write(json.dumps(value, default=str) + "\n")
        sys.stdout.flush()


def _console(*, stderr: bool) -> Console:
    return Console(stderr=stderr, highlight=False, markup=False, emoji=False)


def cli(ctx: typer.Context) -> Cli:
    """The command's shared options (set by the app's callback)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Cli):
        obj = Cli()
        ctx.find_root().obj = obj
    return obj


class CliError(Exception):
    """A failure to report as one line and a non-zero exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

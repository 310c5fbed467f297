"""`ytmaker`: the command line (docs/cli.md). Users' commands go through the gateway with the
SDK; operators' commands go straight to Kafka. Every failure is one line on stderr and a
non-zero exit code, never a traceback."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from ytmaker_cli import user
from ytmaker_cli.context import DEFAULT_BOOTSTRAP, DEFAULT_URL, Cli, CliError
from ytmaker_cli.kafka.reader import KafkaUnavailable
from ytmaker_cli.ops import dlq, rebuild, replay, token, topics
from ytmaker_client import (
    ApiError,
    AuthenticationError,
    ConnectionLost,
    TransportError,
    YtmakerError,
)

app = typer.Typer(
    name="ytmaker",
    help="Runs through the gateway; audit and repair of the log straight on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar="YTMAKER_URL", help="The gateway.", show_default=True)
    ] = DEFAULT_URL,
    token_: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="YTMAKER_TOKEN",
            help="A JWT (see `ytmaker token`).",
            show_default=False,
        ),
    ] = None,
    bootstrap: Annotated[
        str,
        typer.Option(envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka, for the operators' commands."),
    ] = DEFAULT_BOOTSTRAP,
    prefix: Annotated[
        str, typer.Option(envvar="YTMAKER_TOPIC_PREFIX", help="The topics' prefix.")
    ] = "",
) -> None:
    ctx.obj = Cli(url=url.rstrip("/"), token=token_ or None, bootstrap=bootstrap, prefix=prefix)


user.register(app)
app.command("replay")(replay.replay)
app.command("rebuild")(rebuild.command)
app.add_typer(dlq.app, name="dlq")
app.add_typer(topics.app, name="topics")
app.command("token")(token.command)


def _message(exc: BaseException) -> tuple[str, int]:
    """One line for people, and the exit code."""
    if isinstance(exc, CliError):
        return exc.message, exc.code
    if isinstance(exc, AuthenticationError):
        return f"{exc} (give a token with --token or YTMAKER_TOKEN)", 1
    if isinstance(exc, ApiError):
        hint = " (give a token with --token or YTMAKER_TOKEN)" if exc.code == "unauthorized" else ""
        return f"{exc.code}: {exc.message}{hint}{_first_problem(exc)}", 1
    if isinstance(exc, TransportError | ConnectionLost):
        return f"cannot reach the gateway: {exc}", 1
    if isinstance(exc, YtmakerError | KafkaUnavailable):
        return str(exc), 1
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))  # empty for a rule across settings
        return f"invalid setting{' ' + where if where else 's'}: {first['msg']}", 2
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}", 1
    return f"unexpected {type(exc).__name__}: {exc}", 1


def _first_problem(exc: ApiError) -> str:
    """What an `invalid_request` says about its first field (`details.errors`), if anything."""
    errors = exc.details.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    return f" ({errors[0].get('field', '?')}: {errors[0].get('message', '')})"


def _quiet_libraries() -> None:
    """Libraries' log records (aiokafka's connection errors, ...) would print as extra lines
    next to the command's one-line error: they go nowhere unless YTMAKER_CLI_LOG names a
    level (DEBUG, INFO, ...)."""
    level = os.environ.get("YTMAKER_CLI_LOG", "").upper()
    if level:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    else:
        logging.getLogger().addHandler(logging.NullHandler())


def main(argv: list[str] | None = None) -> int:
    """The console script. Usage errors and `typer.Exit` are the framework's (exit 2, or the
    code given); anything else raised is one line on stderr and exit 1 (2 for bad settings).
    Returns the exit code when `argv` is given (tests), else exits."""
    _quiet_libraries()
    try:
        app(args=argv, prog_name="ytmaker", standalone_mode=True)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:
        text, code = _message(exc)
        print(f"error: {text}", file=sys.stderr)
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()

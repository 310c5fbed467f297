"""`ytmaker rebuild`: the progress read model rebuilt from the log into a fresh database
(`ytmaker_progress.rebuild`), and compared with the live one (docs/architecture.md: the log is
the source of truth, the database a projection)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from ytmaker_cli.context import Cli, CliError, cli
from ytmaker_shared.topics import Topic


def _default_into() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"sqlite:///rebuilt-{stamp}.db"


async def rebuild_and_diff(c: Cli, into: str, compare: str | None) -> dict[str, Any]:
    # The read model's code (SQLAlchemy) loads only for this command: a second of start-up.
    from ytmaker_progress.readmodel.store import Store
    from ytmaker_progress.rebuild import NotEmpty, differences, rebuild
    from ytmaker_progress.settings import ProgressSettings

    settings = ProgressSettings(kafka_bootstrap_servers=c.bootstrap, topic_prefix=c.prefix)
    try:
        store, stored, seconds = await rebuild(settings, into)
    except NotEmpty as exc:
        raise CliError(f"{exc}: rebuild into a fresh database", 2) from None
    result: dict[str, Any] = {"into": into, "updates": stored, "seconds": round(seconds, 3)}
    try:
        if compare is not None:
            live = await asyncio.to_thread(Store, compare)
            try:
                result["differences"] = await asyncio.to_thread(differences, live, store)
            finally:
                live.close()
            result["compared_with"] = compare
    finally:
        store.close()
    return result


def command(
    ctx: typer.Context,
    into: Annotated[
        str | None,
        typer.Option(help="URL of a fresh database (default: sqlite:///rebuilt-<time>.db)."),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(help="URL of the live read model (default: YTMAKER_PROGRESS_DATABASE_URL)."),
    ] = None,
    no_compare: Annotated[bool, typer.Option(help="Rebuild only.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="A JSON result.")] = False,
) -> None:
    """Rebuild the progress read model from the log and diff it with the live one
    (exit 1 when they differ)."""
    c = cli(ctx)
    target = into or _default_into()
    live = None if no_compare else (compare or os.environ.get("YTMAKER_PROGRESS_DATABASE_URL"))
    with c.err.status(f"rebuilding from {c.topics.name(Topic.PROGRESS_UPDATES)} …", spinner="dots"):
        result = asyncio.run(rebuild_and_diff(c, target, live))
    diffs: list[str] = result.get("differences", [])
    if json_out:
        c.json(result | {"equal": not diffs if live else None})
    else:
        c.out.print(f"rebuilt {result['updates']} updates into {target} in {result['seconds']}s")
        if live is None:
            c.out.print("not compared (no --compare and no YTMAKER_PROGRESS_DATABASE_URL)")
        elif not diffs:
            c.out.print(f"equal to {live}")
        else:
            table = Table(title=f"{len(diffs)} differences with {live}")
            table.add_column("difference", overflow="fold")
            for line in diffs:
                table.add_row(line)
            c.out.print(table)
    raise typer.Exit(1 if diffs else 0)

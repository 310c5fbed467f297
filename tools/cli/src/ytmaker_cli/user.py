"""The commands for users, through the gateway (docs/cli.md, "Runs"): submit, watch, status,
cancel / pause / resume, history, runs, download, open."""

from __future__ import annotations

import asyncio
import sys
import webbrowser
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import ValidationError
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ytmaker_cli.context import Cli, CliError, cli
from ytmaker_cli.display import eta
from ytmaker_cli.watch import Mode, watch_task
from ytmaker_client import (
    ARTIFACT_NAMES,
    ClientOptions,
    ProjectSettings,
    RestClient,
    TaskState,
    TaskStatus,
)

T = TypeVar("T")

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TaskArg = Annotated[str, typer.Argument(help="The task id (printed by `submit`).")]


def _rest(c: Cli) -> RestClient:
    return RestClient(c.url, c.token)


def run(call: Callable[[RestClient], Awaitable[T]], c: Cli) -> T:
    async def go() -> T:
        async with _rest(c) as api:
            return await call(api)

    return asyncio.run(go())


def _options() -> ClientOptions:
    return ClientOptions()


def _watch_mode(json_out: bool, plain: bool, c: Cli) -> Mode:
    if json_out:
        return Mode.JSON
    if plain or not c.out.is_terminal:
        return Mode.LINES
    return Mode.LIVE


def follow(c: Cli, task_id: str, json_out: bool, plain: bool) -> None:
    mode = _watch_mode(json_out, plain, c)
    code = asyncio.run(watch_task(c, task_id, mode, _options()))
    raise typer.Exit(code)


# --- submit and watch ---------------------------------------------------------------------


def _content(text: str | None, file: Path | None) -> tuple[str, str | None]:
    """The content and, from a file's name, a default title."""
    if text is not None and file is not None:
        raise CliError("give the text or --file, not both", 2)
    if file is not None:
        if str(file) == "-":
            return sys.stdin.read(), None
        try:
            return file.read_text(encoding="utf-8"), file.stem.replace("-", " ").replace("_", " ")
        except OSError as exc:
            raise CliError(f"cannot read {file}: {exc.strerror or exc}", 2) from None
        except UnicodeDecodeError:
            raise CliError(f"{file} is not UTF-8 text", 2) from None
    if text is None or text == "-":
        if sys.stdin.isatty():
            raise CliError("give the text as an argument, with --file, or on stdin", 2)
        return sys.stdin.read(), None
    return text, None


def submit(
    ctx: typer.Context,
    text: Annotated[
        str | None, typer.Argument(help="The text (a topic, an article); '-' or none: stdin.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the text from a file ('-': stdin).")
    ] = None,
    title: Annotated[
        str | None, typer.Option(help="Default: the file's name or first line.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="Like en or pt-BR.")] = None,
    segments: Annotated[int | None, typer.Option(help="1–50.")] = None,
    target_length: Annotated[int | None, typer.Option(help="Seconds, 10–1800.")] = None,
    style: Annotated[str | None, typer.Option()] = None,
    voice: Annotated[str | None, typer.Option()] = None,
    privacy: Annotated[str | None, typer.Option(help="private, unlisted or public.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Then watch the run.")] = False,
    plain: Annotated[bool, typer.Option(help="Watch as lines, not a live display.")] = False,
    json_out: Json = False,
) -> None:
    """Start a project: its text from an argument, a file or stdin."""
    c = cli(ctx)
    content, file_title = _content(text, file)
    if not content.strip():
        raise CliError("the text is empty", 2)
    first_line = content.strip().splitlines()[0].strip()
    chosen = (title or file_title or first_line)[:200]
    given = {
        "language": language,
        "segments": segments,
        "target_length_seconds": target_length,
        "style": style,
        "voice": voice,
        "privacy": privacy,
        "tags": tuple(tag) if tag else None,
    }
    try:
        settings = ProjectSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = {"target_length_seconds": "target-length", "tags": "tag"}.get(
            str(first["loc"][0]), str(first["loc"][0])
        )
        raise CliError(f"--{field}: {first['msg']}", 2) from None
    started = run(lambda api: api.create_project(chosen, content, settings), c)
    if json_out and not watch:
        c.json(started.model_dump())
        return
    if not json_out:
        c.out.print(f"project {started.project_id}\ntask    {started.task_id}")
        c.out.print(f"live page: {started.page_url}?task={started.task_id}", soft_wrap=True)
    if watch:
        follow(c, started.task_id, json_out, plain)


def watch(
    ctx: typer.Context,
    task_id: TaskArg,
    plain: Annotated[bool, typer.Option(help="Lines instead of a live display.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Every update as JSON Lines.")] = False,
) -> None:
    """Follow a run live until it ends (exit 0 completed, 3 failed, 4 cancelled). Reconnects
    and resumes by itself."""
    follow(cli(ctx), task_id, json_out, plain)


# --- status and control -------------------------------------------------------------------


def state_table(state: TaskState) -> Table:
    table = Table(title=state.title or state.task_id, show_header=True)
    table.add_column("stage")
    table.add_column("status")
    table.add_column("progress", justify="right")
    table.add_column("attempt", justify="right")
    table.add_row("overall", str(state.status), f"{state.progress:.1f} %", "")
    for stage, st in state.stages.items():
        table.add_row(str(stage), str(st.status), f"{st.progress:.1f} %", str(st.attempt))
    table.caption = (
        f"task {state.task_id} · project {state.project_id} · ETA {eta(state.eta_seconds)}"
        f" · {state.message}"
    )
    return table


def status(ctx: typer.Context, task_id: TaskArg, json_out: Json = False) -> None:
    """A run's current state."""
    c = cli(ctx)
    state = run(lambda api: api.task(task_id), c)
    if json_out:
        c.json(state.model_dump(mode="json"))
    else:
        c.out.print(state_table(state))


def _control(ctx: typer.Context, task_id: str, action: str, reason: str, json_out: bool) -> None:
    c = cli(ctx)
    act: Literal["cancel", "pause", "resume"] = action  # type: ignore[assignment]
    result = run(lambda api: api.control(task_id, act, reason), c)
    if json_out:
        c.json(result.model_dump())
    else:
        c.out.print(f"{action} requested for {task_id} (event {result.event_id})")


Reason = Annotated[str, typer.Option(help="Why (kept with the request).")]


def cancel(
    ctx: typer.Context, task_id: TaskArg, reason: Reason = "", json_out: Json = False
) -> None:
    """Cancel a run (queued, running or paused)."""
    _control(ctx, task_id, "cancel", reason, json_out)


def pause(
    ctx: typer.Context, task_id: TaskArg, reason: Reason = "", json_out: Json = False
) -> None:
    """Pause a run: it finishes the step in hand and starts nothing new."""
    _control(ctx, task_id, "pause", reason, json_out)


def resume(
    ctx: typer.Context, task_id: TaskArg, reason: Reason = "", json_out: Json = False
) -> None:
    """Resume a paused run."""
    _control(ctx, task_id, "resume", reason, json_out)


def history(
    ctx: typer.Context,
    task_id: TaskArg,
    since: Annotated[int | None, typer.Option(help="Only updates after this offset.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    recent: Annotated[
        bool, typer.Option(help="The recent updates held in memory, not the database.")
    ] = False,
    json_out: Json = False,
) -> None:
    """A run's stored updates, in order."""
    c = cli(ctx)
    source: Literal["memory", "database"] = "memory" if recent else "database"
    found = run(lambda api: api.history(task_id, since=since, limit=limit, source=source), c)
    if json_out:
        c.json(found.model_dump(mode="json"))
        return
    table = Table(title=f"history of {task_id} ({found.source})")
    for name, justify in [("offset", "right"), ("type", "left"), ("event", "left")]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name in ("stage", "status", "progress", "message"):
        table.add_column(name, justify="right" if name == "progress" else "left")
    for item in found.items:
        u = item.update
        table.add_row(
            str(item.offset),
            str(u.type),
            u.event_type,
            str(u.state.stage or ""),
            str(u.state.status),
            f"{u.state.progress:.1f} %",
            u.state.message,
        )
    c.out.print(table)


# --- runs, download, open -----------------------------------------------------------------


def runs(
    ctx: typer.Context,
    status_filter: Annotated[
        TaskStatus | None, typer.Option("--status", help="Only runs with this status.")
    ] = None,
    project: Annotated[
        list[str] | None, typer.Option(metavar="ID", help="Only this project's runs (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many runs.")] = 100,
    all_users: Annotated[
        bool, typer.Option("--all", help="Every user's runs (the operator role only).")
    ] = False,
    json_out: Json = False,
) -> None:
    """Your runs, newest first (`GET /api/v1/runs`), filtered by status or project."""
    c = cli(ctx)

    async def gather(api: RestClient) -> list[TaskState]:
        found: list[TaskState] = []
        projects: list[str | None] = list(project) if project else [None]
        for project_id in projects:
            found += await api.runs(
                status=status_filter, project_id=project_id, limit=limit, all_users=all_users
            )
        return found

    rows: list[dict[str, Any]] = [
        {
            "project_id": task.project_id,
            "title": task.title,
            "task_id": task.task_id,
            "status": str(task.status),
            "progress": task.progress,
            "created_at": task.created_at.isoformat() if task.created_at else None,
        }
        for task in run(gather, c)
    ]
    if json_out:
        c.json(rows)
        return
    table = Table(title=f"runs ({len(rows)})")
    for name in ("project", "title", "task", "status", "progress", "created"):
        table.add_column(name, justify="right" if name == "progress" else "left")
    for row in rows:
        table.add_row(
            row["project_id"],
            row["title"],
            row["task_id"],
            row["status"],
            f"{row['progress']:.1f} %",
            (row["created_at"] or "")[:19],
        )
    c.out.print(table)
    if not rows:
        c.err.print("no runs yet: start one with `ytmaker submit`")


def download(
    ctx: typer.Context,
    task_id: TaskArg,
    what: Annotated[
        list[str] | None,
        typer.Option("--what", help="video, thumbnail or script (repeatable; default: all)."),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write into.")] = Path(
        "."
    ),
    json_out: Json = False,
) -> None:
    """Download a run's video, thumbnail and script, with progress."""
    c = cli(ctx)
    names = what or list(ARTIFACT_NAMES)
    for name in names:
        if name not in ARTIFACT_NAMES:
            raise CliError(f"--what: {name!r} is not one of {', '.join(ARTIFACT_NAMES)}", 2)
    if not output.is_dir():
        raise CliError(f"--output: {output} is not a directory", 2)
    progress = Progress(
        TextColumn("{task.description:10}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=c.err,
        disable=json_out or not c.err.is_terminal,
    )

    async def fetch(api: RestClient) -> list[Path]:
        paths: list[Path] = []
        with progress:
            for name in names:
                bar = progress.add_task(name, total=None)

                def advance(done: int, total: int | None, bar: Any = bar) -> None:
                    progress.update(bar, completed=done, total=total)

                paths.append(
                    await api.download(task_id, name, output, on_progress=advance)  # type: ignore[arg-type]
                )
        return paths

    paths = run(fetch, c)
    if json_out:
        c.json({name: str(path) for name, path in zip(names, paths, strict=True)})
    else:
        for path in paths:
            c.out.print(f"{path} ({path.stat().st_size:,} bytes)")


def open_page(
    ctx: typer.Context,
    task_id: TaskArg,
    browser: Annotated[bool, typer.Option(help="Also open it in the web browser.")] = False,
) -> None:
    """The run's live page URL."""
    c = cli(ctx)
    state = run(lambda api: api.task(task_id), c)
    url = f"{c.url.rstrip('/')}/projects/{state.project_id}?task={task_id}"
    c.out.print(url, soft_wrap=True)
    if browser:
        webbrowser.open(url)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(watch)
    app.command()(status)
    app.command()(cancel)
    app.command()(pause)
    app.command()(resume)
    app.command()(history)
    app.command()(runs)
    app.command()(download)
    app.command("open")(open_page)

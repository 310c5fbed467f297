"""`ytmaker watch TASK`: follow a run to its end with the SDK (every update once, in order,
resumed by offset across reconnects), shown live in a terminal, as lines in a pipe, or as
JSON Lines. The exit code says how the run ended (`EXIT_CODES`)."""

from __future__ import annotations

from enum import StrEnum

from rich.live import Live

from ytmaker_cli.context import Cli
from ytmaker_cli.display import RunView, line, render, summary
from ytmaker_client import (
    ClientOptions,
    ConnectionState,
    ProgressClient,
    Snapshot,
    StateChange,
    TaskState,
    Update,
)

#: Exit codes of a watched run.
EXIT_CODES = {"completed": 0, "failed": 3, "cancelled": 4}


class Mode(StrEnum):
    LIVE = "live"
    LINES = "lines"
    JSON = "json"


def _connection_text(change: StateChange) -> str:
    if change.state is ConnectionState.RECONNECTING:
        return f"reconnecting in {change.delay:.1f}s (attempt {change.attempt})"
    return str(change.state)


def _notice(item: Snapshot) -> str:
    if item.missed:
        return (
            f"the log could not be replayed after offset {item.requested_since}: "
            "showing the current state (recovered: false)"
        )
    return ""


async def watch_task(cli: Cli, task_id: str, mode: Mode, options: ClientOptions) -> int:
    """Follow the task; returns the exit code of how it ended. Raises the SDK's errors
    (the caller turns them into one line)."""
    view = RunView(task_id)
    final: TaskState | None = None
    live: Live | None = None
    if mode is Mode.LIVE:
        live = Live(render(view), console=cli.out, refresh_per_second=8, transient=False)

    def on_state(change: StateChange) -> None:
        if change.channel != "tasks":
            return
        view.connection = _connection_text(change)
        if live is not None:
            live.update(render(view))
        elif mode is Mode.LINES and change.state is ConnectionState.RECONNECTING:
            cli.err.print(f"connection lost ({change.reason}); {view.connection}")

    client = ProgressClient(cli.url, cli.token, options=options)
    client.add_state_listener(on_state)
    try:
        # A task that is not the caller's (or a mistyped id) is refused at once: the live
        # subscription would ask again for its refusal window first (decision 0050).
        await client.rest.task(task_id)
        await client.connect()
        subscription = await client.subscribe_task(task_id, since=-1)
        if live is not None:
            live.start()
        async for item in subscription:
            view.updates += isinstance(item, Update)
            if item.state is not None:
                view.state = final = item.state
            if isinstance(item, Snapshot):
                view.notice = _notice(item) or view.notice
            _show(cli, mode, view, item, live)
    finally:
        if live is not None:
            live.update(render(view))
            live.stop()
        await client.close()
    if final is None:
        return 1
    if mode is not Mode.JSON:
        cli.out.print(summary(final), highlight=False, soft_wrap=True)
    return EXIT_CODES.get(str(final.status), 1)


def _show(cli: Cli, mode: Mode, view: RunView, item: Update | Snapshot, live: Live | None) -> None:
    if live is not None:
        live.update(render(view))
    elif mode is Mode.LINES and item.state is not None:
        kind = item.event_type if isinstance(item, Update) else "snapshot"
        cli.out.print(line(item.state, kind), highlight=False, soft_wrap=True)
        if view.notice and isinstance(item, Snapshot) and item.missed:
            cli.err.print(view.notice)
    elif mode is Mode.JSON:
        if isinstance(item, Update):
            cli.json(
                {
                    "type": str(item.type),
                    "task_id": item.task_id,
                    "offset": item.offset,
                    "epoch": item.epoch,
                    "event_id": item.event_id,
                    "event_type": item.event_type,
                    "state": item.state.model_dump(mode="json"),
                }
            )
        else:
            cli.json(
                {
                    "type": "snapshot",
                    "task_id": item.task_id,
                    "offset": item.offset,
                    "epoch": item.epoch,
                    "recovered": item.recovered,
                    "missed": item.missed,
                    "state": item.state.model_dump(mode="json") if item.state else None,
                }
            )

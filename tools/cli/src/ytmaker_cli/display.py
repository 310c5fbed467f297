"""What people see of a run: the live panel of `ytmaker watch` and the one-line form for
pipes and logs. Pure: a `RunView` in, a rich renderable or a string out."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ytmaker_client import StageStatus, TaskState, TaskStatus
from ytmaker_shared.stages import STAGE_WEIGHTS, Stage

#: Stages in pipeline order (the three asset stages run side by side).
STAGES: tuple[Stage, ...] = tuple(STAGE_WEIGHTS)

_STATUS_STYLE = {
    "queued": "yellow",
    "pending": "dim",
    "running": "cyan",
    "retrying": "magenta",
    "paused": "yellow",
    "completed": "green",
    "skipped": "green",
    "failed": "red",
    "cancelled": "red",
}


@dataclass
class RunView:
    """What the display shows; the watch command updates it."""

    task_id: str
    state: TaskState | None = None
    connection: str = "connecting"
    updates: int = 0
    notice: str = ""


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def _styled(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _bar(progress: float, status: str) -> ProgressBar:
    style = "red" if status in ("failed", "cancelled") else "bar.complete"
    return ProgressBar(
        total=100.0,
        completed=progress,
        width=40,
        complete_style=style,
        finished_style="green" if status != "failed" else "red",
    )


def render(view: RunView) -> RenderableType:
    """The live panel: header, overall bar, one bar per stage with its status and attempt,
    the last message, the connection."""
    state = view.state
    if state is None:
        body: RenderableType = Text(f"waiting for task {view.task_id} …")
        return Panel(body, title="ytmaker", subtitle=_connection(view))
    status = str(state.status)
    head = Text.assemble(
        ("task ", "dim"),
        (state.task_id, ""),
        ("  status ", "dim"),
        _styled(status),
        ("  ETA ", "dim"),
        (eta(state.eta_seconds) if status in ("queued", "running", "paused") else "—", ""),
        ("  updates ", "dim"),
        (str(view.updates), ""),
    )
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=8)
    grid.add_column()
    grid.add_column(justify="right", width=7)
    grid.add_column(width=10)
    grid.add_column()
    grid.add_row(
        Text("overall", style="bold"),
        _bar(state.progress, status),
        f"{state.progress:5.1f} %",
        _styled(status),
        "",
    )
    for stage in STAGES:
        st = state.stages.get(stage)
        stage_status = str(st.status) if st else StageStatus.PENDING.value
        progress = st.progress if st else 0.0
        attempt = f"attempt {st.attempt}" if st and st.attempt else ""
        grid.add_row(
            str(stage),
            _bar(progress, stage_status),
            f"{progress:5.1f} %",
            _styled(stage_status),
            attempt,
        )
    parts: list[RenderableType] = [head, grid]
    message = state.error.message if state.error and status == "failed" else state.message
    parts.append(Text.assemble(("message ", "dim"), (message or "", "")))
    if view.notice:
        parts.append(Text(view.notice, style="yellow"))
    # As Text: a panel reads a string title as markup, and the title is a user's text.
    title = Text(state.title or "ytmaker")
    return Panel(Group(*parts), title=title, subtitle=_connection(view))


def _connection(view: RunView) -> Text:
    style = "green" if view.connection == "connected" else "yellow"
    return Text.assemble(("connection ", "dim"), (view.connection, style))


def line(state: TaskState, event_type: str = "") -> str:
    """One line per update, for a terminal that is not one (a pipe, a log)."""
    stage = f"[{state.stage}] " if state.stage else ""
    return (
        f"{state.progress:5.1f} %  {state.status:9} {event_type:22} {stage}{state.message}".rstrip()
    )


def summary(state: TaskState) -> str:
    """The closing line of a run."""
    if state.status is TaskStatus.COMPLETED:
        return f"completed: {state.task_id}"
    if state.status is TaskStatus.FAILED:
        why = state.error.message if state.error else state.message
        return f"failed: {state.task_id}: {why}"
    return f"{state.status}: {state.task_id}: {state.message}"

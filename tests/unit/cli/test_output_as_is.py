"""Text from the log and from the gateway (a stage's message, a title, a key) is printed by
the command line exactly as it is: rich's markup and emoji codes are not read in it (a
closing tag that opens nothing was a MarkupError; `[script]`, the stage of `watch --plain`'s
lines, vanished as an unknown style)."""

from __future__ import annotations

from ytmaker_cli.context import Cli
from ytmaker_cli.display import RunView, render
from ytmaker_cli.kafka.reader import Raw
from ytmaker_cli.ops.records import show
from ytmaker_cli.user import state_table
from ytmaker_cli.watch import Mode, _show
from ytmaker_client import Snapshot, TaskState
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic

HOSTILE = "a [/x] tag, [bold]bold[/bold] and :thumbs_up:"


def state() -> TaskState:
    return TaskState(
        task_id="t-1",
        project_id="p-1",
        owner="alice",
        title="[/title]",
        status="running",
        stage=Stage.SCRIPT,
        progress=12.5,
        message=HOSTILE,
    )


def test_watch_lines_show_the_stage_and_the_message_as_they_are() -> None:
    c = Cli()
    item = Snapshot("t-1", 3, None, state(), recovered=True, requested_since=None)
    with c.out.capture() as captured:
        _show(c, Mode.LINES, RunView("t-1", state()), item, None)
    text = captured.get()
    assert "[script] " + HOSTILE in text, text


def test_status_shows_hostile_text_as_it_is() -> None:
    c = Cli()
    with c.out.capture() as captured:
        c.out.print(state_table(state()))
    text = " ".join(captured.get().split())  # the caption wraps at the table's width
    assert "[/title]" in text and HOSTILE in text, text


def test_a_record_time_no_date_holds_is_shown_as_its_milliseconds() -> None:
    raw = Raw("pipeline.script", 0, 4, 2**62, b"t-1", b"{}", ())
    shown = show(Topic.SCRIPT, raw)
    assert shown.as_json()["timestamp"] == f"{2**62} ms" and shown.clock == f"{2**62} ms"
    ordinary = show(Topic.SCRIPT, Raw("pipeline.script", 0, 5, 1_700_000_000_123, None, None, ()))
    assert ordinary.time == "2023-11-14T22:13:20.123+00:00" and ordinary.clock == "22:13:20.123"


def test_the_live_display_shows_the_title_as_it_is() -> None:
    # A panel's title is read as markup whatever the console says: the title, a user's
    # text (`submit --title`), is given as Text.
    c = Cli()
    with c.out.capture() as captured:
        c.out.print(render(RunView("t-1", state(), connection="connected")))
    text = captured.get()
    assert "[/title]" in text and "[bold]bold[/bold]" in text, text

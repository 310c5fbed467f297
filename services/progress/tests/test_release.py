"""The release policy (release.py): what a lane may fold now, without a broker."""

from __future__ import annotations

from dataclasses import dataclass

from ytmaker_progress.release import STALLED_AFTER_S, Input, release


@dataclass(frozen=True)
class Rec:
    timestamp: int
    offset: int


def recs(*timestamps: int) -> list[Rec]:
    return [Rec(t, i) for i, t in enumerate(timestamps)]


def run(held, watermarks, inputs, *, now=100.0, released_at=100.0, backlog=0):  # type: ignore[no-untyped-def]
    return release(
        held,
        watermarks,
        inputs,
        now=now,
        opened_at=0.0,
        released_at=released_at,
        backlog_records=backlog,
    )


def test_a_lane_without_a_backlog_releases_everything() -> None:
    held = {"tasks": recs(5, 9), "script": recs(1, 2, 3)}
    out = run(held, {"tasks": 9, "script": 3}, [Input("tasks", 0, 99.0), Input("script", 0, 99.0)])
    assert out.ready == held and out.held == {} and not out.forced


def test_a_partition_in_a_backlog_holds_later_records_of_the_others() -> None:
    # `script` is 500 records behind and has delivered up to t=3: `tasks` waits beyond t=3
    held = {"tasks": recs(2, 4, 9), "script": recs(1, 3)}
    out = run(
        held, {"tasks": 9, "script": 3}, [Input("tasks", 0, 99.0), Input("script", 500, 99.0)]
    )
    assert out.ready == {"tasks": [Rec(2, 0)], "script": recs(1, 3)}
    assert out.held == {"tasks": [Rec(4, 1), Rec(9, 2)]}


def test_a_backlog_within_the_allowance_does_not_hold() -> None:
    held = {"tasks": recs(2, 9), "script": recs(1)}
    inputs = [Input("tasks", 0, 99.0), Input("script", 150, 99.0)]
    assert run(held, {"tasks": 9, "script": 1}, inputs, backlog=200).held == {}


def test_a_partition_behind_with_nothing_fetched_holds_everything_until_it_stalls() -> None:
    held = {"tasks": recs(2, 9)}
    inputs = [Input("tasks", 0, 99.0), Input("script", 500, 98.0)]
    out = run(held, {"tasks": 9}, inputs)
    assert out.ready == {} and out.held == held
    later = 98.0 + STALLED_AFTER_S + 0.1  # `script` delivered nothing for too long
    assert run(held, {"tasks": 9}, inputs, now=later, released_at=later).ready == held


def test_a_partition_never_fetched_holds_from_the_lane_opening() -> None:
    held = {"tasks": recs(2)}
    inputs = [Input("tasks", 0, 1.0), Input("script", None, None)]
    assert run(held, {"tasks": 2}, inputs, now=1.0, released_at=1.0).ready == {}
    assert run(held, {"tasks": 2}, inputs, now=STALLED_AFTER_S + 1, released_at=50.0).ready


def test_a_lane_that_released_nothing_for_too_long_releases_all_out_of_order() -> None:
    held = {"tasks": recs(2, 9)}
    inputs = [Input("tasks", 0, 99.0), Input("script", 500, 99.5)]  # keeps delivering nothing
    out = run(held, {"tasks": 9}, inputs, now=100.0, released_at=100.0 - STALLED_AFTER_S - 1)
    assert out.forced and out.ready == held and out.held == {}

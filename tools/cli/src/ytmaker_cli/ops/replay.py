"""`ytmaker replay`: read topics straight from Kafka (docs/cli.md, "Replay"), and
`ytmaker replay --verify`: the audit of the whole log (`ytmaker_cli.audit`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import typer
from aiokafka import TopicPartition
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ytmaker_cli.audit.report import Report
from ytmaker_cli.audit.verify import Scope, verify
from ytmaker_cli.context import Cli, CliError, cli
from ytmaker_cli.kafka.reader import RangeReader, Ranges, in_time
from ytmaker_cli.ops.records import Shown, show
from ytmaker_cli.ops.timeparse import parse_time, to_ms
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic

PIPELINE = "pipeline"
#: The options `--verify` takes (the others would cut its read: refused).
VERIFY_TAKES = "takes only --task, --project, --clock-skew and --json"


def topics_of(names: Iterable[str]) -> list[Topic]:
    """Logical topics from the arguments (`pipeline`: every pipeline topic)."""
    out: list[Topic] = []
    for name in names or [PIPELINE]:
        if name == PIPELINE:
            out.extend(t for t in PIPELINE_TOPICS if t not in out)
            continue
        try:
            topic = Topic(name)
        except ValueError:
            known = ", ".join([PIPELINE, *(t.value for t in Topic)])
            raise CliError(f"unknown topic {name!r}: one of {known}", 2) from None
        if topic not in out:
            out.append(topic)
    return out


@dataclass(frozen=True)
class Filter:
    task_id: str | None = None
    project_id: str | None = None
    types: frozenset[str] = frozenset()

    def keeps(self, shown: Shown) -> bool:
        if self.task_id is not None and shown.task_id != self.task_id:
            return False
        if self.project_id is not None and shown.project_id != self.project_id:
            return False
        return not self.types or bool({shown.type, shown.type.split(":")[-1]} & self.types)


async def _ranges(
    log: RangeReader,
    names: list[str],
    partitions: list[int] | None,
    first: int | None,
    last: int | None,
    since_ms: int | None,
    until_ms: int | None,
) -> Ranges:
    ranges: Ranges = {}
    for name in names:
        every = await log.partitions(name)
        missing = sorted(set(partitions or ()) - {tp.partition for tp in every})
        if missing:
            n = len(every)
            held = f"{n} partitions (0-{n - 1})" if n > 1 else f"{n} partition (0)"
            raise CliError(f"--partition {missing[0]}: topic {name} has {held}", 2)
        tps = [tp for tp in every if not partitions or tp.partition in partitions]
        bounds = await log.bounds(tps)
        starts = await log.offsets_at(tps, since_ms) if since_ms is not None else {}
        stops = await log.offsets_at(tps, until_ms) if until_ms is not None else {}
        for tp, (begin, end) in bounds.items():
            start, stop = begin, end
            if first is not None:
                start = max(start, first)
            if last is not None:
                stop = min(stop, last + 1)
            if since_ms is not None:
                found = starts.get(tp)
                start = max(start, end if found is None else found)
            if until_ms is not None:
                found = stops.get(tp)
                stop = min(stop, end if found is None else found)
            ranges[TopicPartition(tp.topic, tp.partition)] = (start, stop)
    return ranges


def replay(
    ctx: typer.Context,
    topic: Annotated[
        list[str] | None,
        typer.Argument(
            help="Logical topics (pipeline.tasks, progress.updates, ...); "
            "default `pipeline`: every pipeline topic, merged in time."
        ),
    ] = None,
    partition: Annotated[
        list[int] | None, typer.Option(min=0, help="Only this partition (repeatable).")
    ] = None,
    from_offset: Annotated[
        int | None, typer.Option(min=0, help="First offset (each partition).")
    ] = None,
    to_offset: Annotated[int | None, typer.Option(min=0, help="Last offset, included.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO 8601, or 15m ago).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task's records.")] = None,
    project: Annotated[str | None, typer.Option(help="Only this project's records.")] = None,
    type_: Annotated[
        list[str] | None, typer.Option("--type", help="Only this event type (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many records.")] = None,
    verify_: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Audit the log instead: whole tasks on every topic, partition and time; "
            f"{VERIFY_TAKES}. Exit 1 on any violation.",
        ),
    ] = False,
    clock_skew: Annotated[
        float | None,
        typer.Option(min=0, help="--verify only: seconds producers' clocks may differ (0)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON Lines (a JSON report).")] = False,
) -> None:
    """Read topics straight from Kafka, between offsets or times, filtered; or audit them."""
    c = cli(ctx)
    if verify_:
        cuts = {
            "topic arguments": topic,
            "--partition": partition,
            "--from-offset": from_offset,
            "--to-offset": to_offset,
            "--since": since,
            "--until": until,
            "--type": type_,
            "--limit": limit,
        }
        refused = [name for name, value in cuts.items() if value is not None]
        if refused:
            # Part of a task's records would be reported as violations (decision 0051).
            raise CliError(
                "--verify audits whole tasks on every topic, partition and time; "
                f"it {VERIFY_TAKES}, not {', '.join(refused)}",
                2,
            )
        report = asyncio.run(_verify(c, Scope(task, project), clock_skew or 0.0, json_out))
        if json_out:
            c.json(report.as_dict())
        else:
            print_report(c, report)
        raise typer.Exit(0 if report.ok else 1)
    if clock_skew is not None:
        raise CliError("--clock-skew is for the audit: give it with --verify", 2)
    try:
        since_ms = to_ms(parse_time(since)) if since else None
        until_ms = to_ms(parse_time(until)) if until else None
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    wanted = topics_of(topic or [])
    keep = Filter(task, project, frozenset(type_ or ()))

    progress = _reading_bar(c, quiet=json_out)

    async def go() -> list[Shown]:
        rows: list[Shown] = []
        count = 0
        logical = {c.topics.name(t): t for t in wanted}
        # `progress.updates` is read uncommitted like its own readers (decision 0038), every
        # other topic committed only: a reader each, their records merged in time.
        updates = [t for t in wanted if t is Topic.PROGRESS_UPDATES]
        others = [t for t in wanted if t is not Topic.PROGRESS_UPDATES]
        async with contextlib.AsyncExitStack() as readers:
            streams, total = [], 0
            for committed, group in ((True, others), (False, updates)):
                if not group:
                    continue
                log = await readers.enter_async_context(
                    RangeReader(c.bootstrap, committed=committed)
                )
                ranges = await _ranges(
                    log,
                    [c.topics.name(t) for t in group],
                    partition,
                    from_offset,
                    to_offset,
                    since_ms,
                    until_ms,
                )
                total += sum(e - b for b, e in ranges.values())
                streams.append(log.merged(ranges))
            bar = progress.add_task("read", total=total)
            async for raw in in_time(*streams):
                progress.advance(bar)
                shown = show(logical[raw.topic], raw)
                if not keep.keeps(shown):
                    continue
                count += 1
                if json_out:
                    c.json(shown.as_json())
                else:
                    rows.append(shown)
                if limit is not None and count >= limit:
                    break
        return rows

    with progress:
        rows = asyncio.run(go())
    if not json_out:
        table = Table(title=f"{', '.join(t.value for t in wanted)} ({len(rows)} records)")
        for name in ("time", "topic", "p", "offset", "task", "type", "stage", "detail"):
            table.add_column(name, justify="right" if name in ("p", "offset") else "left")
        for s in rows:
            table.add_row(
                s.clock,
                s.topic,
                str(s.raw.partition),
                str(s.raw.offset),
                (s.task_id or "")[-12:],
                s.type,
                s.stage,
                s.error or s.detail,
            )
        c.out.print(table)


def _reading_bar(c: Cli, *, quiet: bool) -> Progress:
    """A bar of the records read, on stderr, gone once done; none outside a terminal."""
    return Progress(
        TextColumn("reading the log"),
        BarColumn(),
        MofNCompleteColumn(),
        console=c.err,
        transient=True,
        disable=quiet or not c.err.is_terminal,
    )


async def _verify(c: Cli, scope: Scope, skew: float, quiet: bool) -> Report:
    progress = _reading_bar(c, quiet=quiet)
    bar = progress.add_task("read", total=None)
    with progress:
        return await verify(
            c.bootstrap,
            c.topics,
            scope=scope,
            skew=timedelta(seconds=skew),
            total=lambda n: progress.update(bar, total=n),
            advance=lambda n: progress.advance(bar, n),
        )


def print_report(c: Cli, report: Report) -> None:
    summary = Table(title="audit", show_header=False)
    summary.add_column()
    summary.add_column(justify="right")
    for topic, n in sorted(report.records.items()):
        summary.add_row(f"records in {topic}", str(n))
    summary.add_row("tasks", str(report.tasks))
    summary.add_row("updates", str(report.updates))
    for version, n in sorted(report.upcast.items()):
        summary.add_row(f"events written as schema version {version}", str(n))
    summary.add_row("events the fold has not reached yet", str(report.pending))
    summary.add_row("stage events after a failed or cancelled task", str(report.after_end))
    if report.partial_tasks:
        summary.add_row("tasks begun before the log's start", str(report.partial_tasks))
    for check, n in report.by_check().items():
        summary.add_row(f"violations: {check}", str(n))
    c.out.print(summary)
    if report.ok:
        c.out.print("OK: no violation")
        return
    table = Table(title=f"{len(report.violations)} violations")
    for name in ("check", "topic", "p", "offset", "task", "what"):
        table.add_column(
            name, justify="right" if name in ("p", "offset") else "left", overflow="fold"
        )
    for v in report.sorted_violations():
        table.add_row(
            v.check,
            v.coord.topic if v.coord else "",
            str(v.coord.partition) if v.coord else "",
            str(v.coord.offset) if v.coord else "",
            v.task_id or "",
            v.message,
        )
    c.out.print(table)

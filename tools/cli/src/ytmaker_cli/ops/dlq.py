"""`ytmaker dlq list / show / requeue`: the dead letters of `pipeline.dlq`
(docs/architecture.md, "Topics").

A requeue sends the original key and value, byte for byte, back to the topic and partition
they came from, with the original headers and three of its own, so that the log says what
happened: `ytmaker.requeued.from` (`<dlq topic>/<partition>/<offset>`), `.at` and `.by`.

Only a letter that is a copy of the record it names is requeued, and only to a topic whose
consumers dead-letter records. Whoever may write `pipeline.dlq` (every stage may) could
otherwise forge a letter that has the operator, who may write every pipeline topic, write any
bytes to any of them: a stage's completion in another stage's topic, a cancel on
`pipeline.control` (decision 0129).
"""

from __future__ import annotations

import asyncio
import getpass
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from rich.table import Table
from rich.text import Text

from ytmaker_cli.context import Cli, CliError, cli
from ytmaker_cli.kafka.reader import KafkaUnavailable, RangeReader, Raw
from ytmaker_cli.ops.records import dead_letter
from ytmaker_shared.kafka.connection import aiokafka_connection, close_client
from ytmaker_shared.kafka.dlq import HEADER_PREFIX, DeadLetter
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic

app = typer.Typer(help="Dead letters: list, show, requeue.", no_args_is_help=True)

REQUEUED_FROM = "ytmaker.requeued.from"
REQUEUED_AT = "ytmaker.requeued.at"
REQUEUED_BY = "ytmaker.requeued.by"
#: The topics whose consumers dead-letter records (the stages' inputs, the fold's): the only
#: topics a requeue writes to.
FROM_TOPICS = (*PIPELINE_TOPICS, Topic.PROGRESS_ETA)


@dataclass(frozen=True)
class Letter:
    """A dead letter and where it is in `pipeline.dlq` (`id`: `partition:offset`)."""

    raw: Raw
    letter: DeadLetter

    @property
    def id(self) -> str:
        return f"{self.raw.partition}:{self.raw.offset}"

    def summary(self) -> dict[str, Any]:
        d = self.letter
        return {
            "id": self.id,
            "topic": d.topic,
            "partition": d.partition,
            "offset": d.offset,
            "reason": d.reason,
            "detail": d.detail,
            "group": d.consumer_group,
            "service": d.service,
            "failed_at": d.failed_at,
            "key": _text(d.key),
        }


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode(errors="replace")


class Letters(list[Letter]):
    """The dead letters of `pipeline.dlq`, oldest first; `foreign`: how many of its records
    are not dead letters (no dead-letter headers, or unreadable ones: not ytmaker's)."""

    foreign = 0


async def read_letters(c: Cli) -> Letters:
    async with RangeReader(c.bootstrap) as log:
        name = c.topics.name(Topic.DLQ)
        bounds = await log.bounds(await log.partitions(name))
        found = Letters()
        async for raw in log.read({tp: b for tp, b in bounds.items()}):
            try:
                found.append(Letter(raw, dead_letter(raw)))
            except (KeyError, ValueError):
                found.foreign += 1  # not written by a DeadLetterWriter: nothing to requeue
        found.sort(key=lambda x: (x.raw.timestamp, x.raw.partition, x.raw.offset))
        return found


@dataclass(frozen=True)
class LetterFilter:
    reason: str | None = None
    topic: str | None = None
    group: str | None = None

    def keeps(self, letter: Letter, c: Cli) -> bool:
        d = letter.letter
        if self.reason and d.reason != self.reason:
            return False
        if self.topic and d.topic not in (self.topic, c.topics.name(Topic(self.topic))):
            return False
        return not self.group or d.consumer_group == self.group


def _filter(reason: str | None, topic: str | None, group: str | None) -> LetterFilter:
    if topic is not None:
        try:
            Topic(topic)
        except ValueError:
            raise CliError(f"--topic: unknown topic {topic!r}", 2) from None
    return LetterFilter(reason, topic, group)


Reason = Annotated[str | None, typer.Option(help="Only this reason (invalid_json, ...).")]
FromTopic = Annotated[str | None, typer.Option("--topic", help="Only from this topic.")]
Group = Annotated[str | None, typer.Option(help="Only of this consumer group.")]
Json = Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]


@app.command("list")
def list_(
    ctx: typer.Context,
    reason: Reason = None,
    topic: FromTopic = None,
    group: Group = None,
    json_out: Json = False,
) -> None:
    """Every dead letter, oldest first."""
    c = cli(ctx)
    keep = _filter(reason, topic, group)
    everything = asyncio.run(read_letters(c))
    letters = [x for x in everything if keep.keeps(x, c)]
    if everything.foreign:
        c.err.print(
            f"{everything.foreign} record(s) of {c.topics.name(Topic.DLQ)} are not dead letters "
            "(no ytmaker dead-letter headers): not listed, and never requeued"
        )
    if json_out:
        c.json([x.summary() for x in letters])
        return
    table = Table(title=f"dead letters ({len(letters)})")
    for name in ("id", "from", "reason", "group", "failed at", "detail"):
        table.add_column(name, overflow="fold")
    for x in letters:
        d = x.letter
        table.add_row(
            x.id,
            f"{d.topic}[{d.partition}]@{d.offset}",
            d.reason,
            d.consumer_group,
            d.failed_at[:19],
            d.detail[:120],
        )
    c.out.print(table)


def _find(letters: list[Letter], ident: str) -> Letter:
    for x in letters:
        if x.id == ident:
            return x
    if ":" not in ident:
        raise CliError(f"{ident!r}: a dead letter's id is partition:offset (see `dlq list`)", 2)
    raise CliError(f"no dead letter {ident} in {Topic.DLQ}")


@app.command()
def show(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(metavar="ID", help="partition:offset (`dlq list`).")],
    json_out: Json = False,
) -> None:
    """One dead letter: where it came from, why, and its bytes."""
    c = cli(ctx)
    x = _find(asyncio.run(read_letters(c)), ident)
    value = x.letter.value
    try:
        shown: Any = json.loads(value) if value is not None else None
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python parses
        shown = _text(value)
    headers = {k: v.decode(errors="replace") for k, v in x.raw.headers}
    if json_out:
        c.json(x.summary() | {"value": shown, "headers": headers})
        return
    for key, val in x.summary().items():
        c.out.print(Text.assemble((f"{key:>10}", "dim"), f" {val}"), soft_wrap=True)
    original = {k: v for k, v in headers.items() if not k.startswith(HEADER_PREFIX)}
    if original:
        c.out.print(Text.assemble((f"{'headers':>10}", "dim"), f" {original}"), soft_wrap=True)
    c.out.print(Text(f"{'value':>10}", style="dim"))
    c.out.print_json(data=shown) if isinstance(shown, dict | list) else c.out.print(repr(shown))


def original_headers(x: Letter) -> tuple[tuple[str, bytes], ...]:
    """The headers the record had: the letter's without the dead-letter context."""
    return tuple((k, v) for k, v in x.raw.headers if not k.startswith(HEADER_PREFIX))


def requeue_headers(x: Letter, dlq_name: str, by: str) -> list[tuple[str, bytes]]:
    """The original headers (without the dead-letter context) and the requeue's own."""
    return [
        *original_headers(x),
        (REQUEUED_FROM, f"{dlq_name}/{x.raw.partition}/{x.raw.offset}".encode()),
        (REQUEUED_AT, datetime.now(UTC).isoformat().encode()),
        (REQUEUED_BY, by.encode()),
    ]


async def refusals(c: Cli, letters: list[Letter]) -> dict[str, str]:
    """Why each letter that may not be requeued may not, by id: it names a topic no consumer
    dead-letters from, or it is not a copy of the record it names (key, value and headers),
    or that record is no longer there to compare it with (past the topic's retention)."""
    refused: dict[str, str] = {}
    if not letters:  # nothing to check: no connection
        return refused
    allowed = {c.topics.name(t) for t in FROM_TOPICS}
    partitions: dict[str, set[int]] = {}  # each topic's, asked once
    async with RangeReader(c.bootstrap) as log:
        for x in letters:
            d = x.letter
            where = f"{d.topic}[{d.partition}]@{d.offset}"
            if d.topic not in allowed:
                refused[x.id] = f"names {d.topic}, a topic no consumer dead-letters from"
            elif (original := await _record_at(log, d, partitions)) is None:
                refused[x.id] = f"names {where}, which is not on the topic (or no longer)"
            elif not _copies(x, original):
                refused[x.id] = f"is not a copy of {where}, the record it names"
    return refused


def _copies(x: Letter, record: Raw) -> bool:
    """Whether the letter holds `record`'s key, value and headers, byte for byte."""
    held = (x.letter.key, x.letter.value, original_headers(x))
    return (record.key, record.value, record.headers) == held


async def _record_at(
    log: RangeReader, d: DeadLetter, partitions: dict[str, set[int]]
) -> Raw | None:
    """The record the letter names, if it is on its topic (`partitions`: each topic's
    partitions, filled as topics are first asked about)."""
    if d.topic not in partitions:
        partitions[d.topic] = {tp.partition for tp in await log.partitions(d.topic)}
    if d.partition not in partitions[d.topic]:
        return None
    tp = TopicPartition(d.topic, d.partition)
    ((start, end),) = (await log.bounds([tp])).values()
    if not start <= d.offset < end:
        return None
    found = [raw async for raw in log.read({tp: (d.offset, d.offset + 1)})]
    return found[0] if found else None


async def _send(c: Cli, letters: list[Letter], by: str) -> list[dict[str, Any]]:
    settings = ServiceSettings(kafka_bootstrap_servers=c.bootstrap)  # and YTMAKER_KAFKA_* user
    producer = AIOKafkaProducer(
        **aiokafka_connection(settings), acks="all", enable_idempotence=True, linger_ms=0
    )
    try:
        await producer.start()
    except KafkaError as exc:
        await close_client(producer.stop(), "requeue")
        raise KafkaUnavailable(f"cannot reach Kafka at {c.bootstrap}: {exc}") from None
    sent = []
    try:
        for x in letters:
            d = x.letter
            partitions = await producer.partitions_for(d.topic)
            meta = await producer.send_and_wait(
                d.topic,
                key=d.key,
                value=d.value,
                headers=requeue_headers(x, c.topics.name(Topic.DLQ), by),
                partition=d.partition if d.partition in partitions else None,
            )
            sent.append(
                x.summary() | {"requeued_to": f"{meta.topic}[{meta.partition}]@{meta.offset}"}
            )
    finally:
        await close_client(producer.stop(), "requeue")
    return sent


@app.command()
def requeue(
    ctx: typer.Context,
    ident: Annotated[
        list[str] | None, typer.Argument(metavar="ID...", help="partition:offset of each.")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every dead letter that the filters keep.")
    ] = False,
    reason: Reason = None,
    topic: FromTopic = None,
    group: Group = None,
    by: Annotated[str | None, typer.Option(help="Who requeues (default: your login).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would be sent; send nothing.")] = False,
    json_out: Json = False,
) -> None:
    """Send dead letters' original bytes back to their topic, marked as requeued (only a
    letter that is a copy of the record it names; exit 1 if any is not)."""
    c = cli(ctx)
    if bool(ident) == all_:
        raise CliError("give dead letters' ids, or --all (with filters)", 2)
    letters = asyncio.run(read_letters(c))
    if all_:
        keep = _filter(reason, topic, group)
        chosen = [x for x in letters if keep.keeps(x, c)]
    else:
        chosen = [_find(letters, i) for i in ident or []]
    who = by or _login()
    refused = asyncio.run(refusals(c, chosen))
    chosen = [x for x in chosen if x.id not in refused]
    if dry_run:
        result = [x.summary() | {"requeued_to": None} for x in chosen]
    else:
        result = asyncio.run(_send(c, chosen, who))
    if json_out:
        c.json(result + [{"id": letter, "refused": why} for letter, why in refused.items()])
    else:
        for row in result:
            target = row["requeued_to"] or "(dry run)"
            where = f"{row['topic']}[{row['partition']}]@{row['offset']}"
            c.out.print(f"{row['id']}  {where} → {target}")
        for letter, why in refused.items():
            c.out.print(f"{letter}  not requeued: the letter {why}")
        c.out.print(f"{'would requeue' if dry_run else 'requeued'} {len(result)} dead letter(s)")
    if refused:
        raise CliError(f"{len(refused)} dead letter(s) not requeued (see above)")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

"""`ytmaker topics create / describe`: the topics of `ytmaker_shared.topics` under the prefix,
with their partitions, retention, records and the lag of every consumer group on them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from rich.table import Table

from ytmaker_cli.context import Cli, cli
from ytmaker_cli.kafka.reader import KafkaUnavailable, RangeReader
from ytmaker_shared.kafka import ensure_topics
from ytmaker_shared.kafka.connection import aiokafka_connection, close_client
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import TOPIC_SPECS

app = typer.Typer(help="Create and describe the topics.", no_args_is_help=True)


@dataclass
class TopicInfo:
    name: str
    logical: str
    exists: bool = False
    partitions: int = 0
    replicas: int = 0
    cleanup_policy: str = ""
    retention_ms: str = ""
    offsets: int = 0  # held: records and transaction markers
    lag: dict[str, int] = field(default_factory=dict)  # consumer group → lag

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@app.command()
def create(
    ctx: typer.Context,
    partitions: Annotated[
        int | None, typer.Option(min=1, help="Default: YTMAKER_TOPIC_PARTITIONS.")
    ] = None,
    replication: Annotated[int | None, typer.Option(min=1, help="Replication factor.")] = None,
) -> None:
    """Create the topics that do not exist yet (the others are left as they are)."""
    c = cli(ctx)
    overrides: dict[str, Any] = {"kafka_bootstrap_servers": c.bootstrap, "topic_prefix": c.prefix}
    if partitions is not None:
        overrides["topic_partitions"] = partitions
    if replication is not None:
        overrides["topic_replication_factor"] = replication
    settings = ServiceSettings(**overrides, broker_startup_wait_s=10.0)
    try:
        created = asyncio.run(ensure_topics(settings))
    except (KafkaError, OSError) as exc:
        raise KafkaUnavailable(f"cannot create topics at {c.bootstrap}: {exc}") from None
    for name in created:
        c.out.print(f"created {name}")
    c.out.print(f"{len(created)} created, {len(TOPIC_SPECS) - len(created)} already existed")


async def describe_topics(c: Cli, groups: list[str] | None) -> list[TopicInfo]:
    infos = [TopicInfo(c.topics.name(s.topic), s.topic.value) for s in TOPIC_SPECS]
    settings = ServiceSettings(kafka_bootstrap_servers=c.bootstrap)  # and YTMAKER_KAFKA_* user
    admin = AIOKafkaAdminClient(**aiokafka_connection(settings), request_timeout_ms=15_000)
    try:
        await admin.start()
    except KafkaError as exc:
        await close_client(admin.close(), "topics")
        raise KafkaUnavailable(f"cannot reach Kafka at {c.bootstrap}: {exc}") from None
    try:
        async with RangeReader(c.bootstrap) as log:
            return await _describe(admin, log, infos, groups, c.prefix)
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot describe the topics: {exc}") from None
    finally:
        await close_client(admin.close(), "topics")


async def _describe(
    admin: AIOKafkaAdminClient,
    log: RangeReader,
    infos: list[TopicInfo],
    groups: list[str] | None,
    prefix: str,
) -> list[TopicInfo]:
    existing = set(await admin.list_topics())
    present = [i for i in infos if i.name in existing]
    for info in present:
        info.exists = True
    if not present:
        return infos
    for described in await admin.describe_topics([i.name for i in present]):
        info = next(i for i in present if i.name == described["topic"])
        parts = described["partitions"]
        info.partitions = len(parts)
        info.replicas = max((len(p["replicas"]) for p in parts), default=0)
    resources = [ConfigResource(ConfigResourceType.TOPIC, i.name) for i in present]
    for response in await admin.describe_configs(resources):
        for _code, _msg, _type, name, entries in response.resources:
            info = next(i for i in present if i.name == name)
            values = {e[0]: e[1] for e in entries}
            info.cleanup_policy = values.get("cleanup.policy", "")
            info.retention_ms = values.get("retention.ms", "")
    tps = [TopicPartition(i.name, p) for i in present for p in range(i.partitions)]
    bounds = await log.bounds(tps)
    end = {tp: e for tp, (_, e) in bounds.items()}
    for info in present:
        info.offsets = sum(e - b for tp, (b, e) in bounds.items() if tp.topic == info.name)
    names = groups if groups else await _groups(admin, prefix)
    for group in names:
        committed = await admin.list_consumer_group_offsets(group)
        for info in present:
            mine = {tp: m for tp, m in committed.items() if tp.topic == info.name}
            if mine:
                info.lag[group] = sum(
                    max(0, end.get(tp, m.offset) - m.offset) for tp, m in mine.items()
                )
    return infos


async def _groups(admin: AIOKafkaAdminClient, prefix: str) -> list[str]:
    """The consumer groups of this deployment: the services name theirs after the prefix."""
    found = sorted(str(g[0]) for g in await admin.list_consumer_groups())
    return [g for g in found if g.startswith(prefix)] if prefix else found


@app.command()
def describe(
    ctx: typer.Context,
    group: Annotated[
        list[str] | None, typer.Option(help="Only these consumer groups (default: the prefix's).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Partitions, replication, retention, records and lag per consumer group."""
    c = cli(ctx)
    infos = asyncio.run(describe_topics(c, group))
    if json_out:
        c.json([i.as_dict() for i in infos])
        return
    table = Table(title=f"topics{' under ' + c.prefix if c.prefix else ''}")
    for name in ("topic", "partitions", "replicas", "cleanup", "retention", "offsets", "lag"):
        table.add_column(
            name, justify="right" if name in ("partitions", "replicas", "offsets") else "left"
        )
    for i in infos:
        if not i.exists:
            table.add_row(i.name, "missing", "", "", "", "", "")
            continue
        retention = "forever" if i.retention_ms == "-1" else _days(i.retention_ms)
        lag = ", ".join(f"{g.removeprefix(c.prefix)}: {n}" for g, n in sorted(i.lag.items()))
        table.add_row(
            i.name,
            str(i.partitions),
            str(i.replicas),
            i.cleanup_policy,
            retention,
            str(i.offsets),
            lag,
        )
    c.out.print(table)


def _days(ms: str) -> str:
    try:
        return f"{int(ms) / 86_400_000:g} d"
    except ValueError:
        return ms

"""The operator command line against the real broker: a set of topics of its own per test, and
the command run in this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.support.kafka import unique_name
from ytmaker_cli.main import main
from ytmaker_shared.kafka import delete_topics, ensure_topics
from ytmaker_shared.settings import ServiceSettings

#: Makes the topics (name prefix, partitions a topic), deleted after the test.
Topics = Callable[[str, int], Awaitable[ServiceSettings]]


@pytest.fixture
async def make_topics(kafka_bootstrap: str) -> AsyncIterator[Topics]:
    made: list[ServiceSettings] = []

    async def make(name: str, partitions: int) -> ServiceSettings:
        settings = ServiceSettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            topic_prefix=unique_name(name) + ".",
            topic_partitions=partitions,
        )
        await ensure_topics(settings)
        made.append(settings)
        return settings

    yield make
    for settings in made:
        await delete_topics(settings)


async def ytmaker(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """`ytmaker … args` on the topics of `settings`, in this process on a thread of its own
    (it runs its own event loop): exit code, stdout, stderr."""
    capsys.readouterr()
    code = await asyncio.to_thread(
        main,
        ["--bootstrap", settings.kafka_bootstrap_servers, "--prefix", settings.topic_prefix, *args],
    )
    out, err = capsys.readouterr()
    return code, out, err

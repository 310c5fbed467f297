"""Create every topic of `TOPIC_SPECS` (idempotent), on any cluster, and wait until its
coordinators answer.

`python -m ytmaker_shared.kafka.admin` does it with the settings from the environment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from itertools import count
from typing import Final, Protocol, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError, for_code

from ytmaker_shared.kafka.connection import aiokafka_connection, close_client
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import TOPIC_SPECS

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36
#: A user whose ACLs do not let it create a topic (TOPIC_ and CLUSTER_AUTHORIZATION_FAILED):
#: in a cluster with users the topics are made by their owner (KafkaTopic resources).
_NOT_OURS_TO_CREATE = frozenset({29, 31})
_T = TypeVar("_T")

#: The broker's topic behind each kind of coordinator (FindCoordinator's key type).
_COORDINATOR_TOPICS: Final = {0: "__consumer_offsets", 1: "__transaction_state"}


async def wait_for_broker(
    settings: ServiceSettings,
    stopping: asyncio.Event | None = None,
    *,
    timeout_s: float | None = None,
    interval_s: float = 0.5,
) -> bool:
    """Wait until a client can bootstrap from the configured broker.

    Returns True once it answers, False when `stopping` is set first. Raises
    KafkaConnectionError when `timeout_s` (default `settings.broker_startup_wait_s`) passes.
    """
    loop = asyncio.get_running_loop()
    wait = settings.broker_startup_wait_s if timeout_s is None else timeout_s
    give_up = loop.time() + wait
    warned = False
    while stopping is None or not stopping.is_set():
        client = AIOKafkaClient(**aiokafka_connection(settings), request_timeout_ms=5000)
        try:
            await client.bootstrap()
            if warned:
                log.info("broker reachable", extra={"bootstrap": settings.kafka_bootstrap_servers})
            return True
        except KafkaConnectionError:
            if loop.time() >= give_up:
                raise
            if not warned:
                log.warning(
                    "broker unreachable, waiting",
                    extra={"bootstrap": settings.kafka_bootstrap_servers, "wait_s": wait},
                )
                warned = True
        finally:
            await client.close()
        await asyncio.sleep(interval_s)
    return False


class _Startable(Protocol):
    async def start(self) -> None: ...


async def start_when_reachable(client: _Startable, settings: ServiceSettings) -> None:
    """`await client.start()` (an aiokafka consumer or producer), retried while the broker
    cannot be reached, for up to `settings.broker_startup_wait_s`; then the error is raised.
    The broker may go away between a process's first contact and its clients' start."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + settings.broker_startup_wait_s
    while True:
        try:
            await client.start()
            return
        except KafkaConnectionError:
            if loop.time() >= give_up:
                raise
            log.warning("broker unreachable at start, retrying")
            await asyncio.sleep(0.5)


async def ensure_topics(settings: ServiceSettings) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Waits up to
    `settings.broker_startup_wait_s` for an unreachable broker (see `wait_for_broker`). A
    Kafka user that may not create a topic leaves it to the cluster's owner (decision 0122):
    it then sees only the topics its ACLs let it describe."""
    await wait_for_broker(settings)
    admin = AIOKafkaAdminClient(**aiokafka_connection(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=settings.topics.name(spec.topic),
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=spec.config(),
            )
            for spec in TOPIC_SPECS
            if settings.topics.name(spec.topic) not in existing
        ]
        created, theirs = [], []
        if wanted:
            response = await admin.create_topics(wanted)
            for name, code, *_ in response.topic_errors:
                if code == 0:
                    created.append(name)
                elif code in _NOT_OURS_TO_CREATE:
                    theirs.append(name)
                elif code != _TOPIC_ALREADY_EXISTS:  # a race with another creator is fine
                    raise for_code(code)(f"cannot create topic {name}")
            log.info("created topics", extra={"topics": created, "not_ours": theirs})
        await _wait_until_listed(admin, set(settings.topics.all()) - set(theirs))
        await _wait_for_coordinators(admin)
        return created
    finally:
        await close_client(admin.close(), "topics")  # a lookup cut short may be in flight


async def delete_topics(settings: ServiceSettings) -> list[str]:
    """Delete this prefix's topics that exist (a benchmark's or a test's own set, when it is
    done with them: every partition left behind costs the broker); return the names deleted."""
    admin = AIOKafkaAdminClient(**aiokafka_connection(settings))
    await admin.start()
    try:
        names = sorted(set(settings.topics.all()) & set(await admin.list_topics()))
        if names:
            await admin.delete_topics(names)
            log.info("deleted topics", extra={"topics": names})
        return names
    finally:
        await close_client(admin.close(), "topics")


async def _wait_until_listed(
    admin: AIOKafkaAdminClient, names: set[str], timeout_s: float = 30.0
) -> None:
    """Topic creation is asynchronous in the cluster: wait until metadata shows them all."""
    async with asyncio.timeout(timeout_s):
        while missing := names - set(await admin.list_topics()):
            log.debug("waiting for topics", extra={"missing": sorted(missing)})
            await asyncio.sleep(0.1)


async def _wait_for_coordinators(admin: AIOKafkaAdminClient, timeout_s: float = 30.0) -> None:
    """Wait until the group and the transaction coordinators answer for every key.

    A new cluster makes `__consumer_offsets` and `__transaction_state` when a client first asks
    for a coordinator of their kind; until their partitions are loaded every lookup fails, and
    aiokafka logs each retry of a starting consumer at ERROR. Asked here, where the topics are
    made, the services start on a cluster that is ready. A courtesy, never a condition: a
    cluster that refuses the lookups (ACLs) or stays unready is left to the clients' retries.
    """
    try:
        async with asyncio.timeout(timeout_s):
            for kind, topic in _COORDINATOR_TOPICS.items():
                if await _coordinator_found(admin, "ytmaker", kind):
                    continue  # found at once: the topic was there, every partition loaded
                # the lookup has the topic made (or it is loading): wait for each partition
                partitions = await _polled(partial(_partition_count, admin, topic))
                for key in one_key_per_partition(partitions):
                    await _polled(partial(_coordinator_found, admin, key, kind))
    except TimeoutError:
        log.warning("coordinators not ready, services will retry", extra={"wait_s": timeout_s})
    except KafkaError as err:
        log.info("coordinators not checked", extra={"error": type(err).__name__})


async def _coordinator_found(admin: AIOKafkaAdminClient, key: str, kind: int) -> bool:
    """Whether the coordinator of `key` answers now; False while it is being made or loaded."""
    try:
        await admin.find_coordinator(key, kind)
    except KafkaError as err:
        if not err.retriable:
            raise
        return False
    return True


async def _polled(probe: Callable[[], Awaitable[_T]], interval_s: float = 0.1) -> _T:
    """`await probe()` every `interval_s` until it gives something true; that."""
    while not (result := await probe()):  # noqa: ASYNC110 - the broker is asked, nothing to await
        await asyncio.sleep(interval_s)
    return result


async def _partition_count(admin: AIOKafkaAdminClient, topic: str) -> int:
    (described,) = await admin.describe_topics([topic])
    return len(described["partitions"])


def one_key_per_partition(partitions: int, prefix: str = "ytmaker") -> Iterator[str]:
    """A key (`<prefix>-<n>`) for each partition of a coordinator topic with `partitions`."""
    seen: set[int] = set()
    for n in count():
        if len(seen) == partitions:
            return
        key = f"{prefix}-{n}"
        partition = coordinator_partition(key, partitions)
        if partition not in seen:
            seen.add(partition)
            yield key


def coordinator_partition(key: str, partitions: int) -> int:
    """The partition of a coordinator topic that serves `key`, as the broker picks it:
    `Utils.abs(key.hashCode()) % partitions`, with Java's `String.hashCode` (UTF-16 units)."""
    encoded = key.encode("utf-16-le")
    h = 0
    for i in range(0, len(encoded), 2):
        h = (31 * h + int.from_bytes(encoded[i : i + 2], "little")) & 0xFFFFFFFF
    signed = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if signed == -(1 << 31) else abs(signed)) % partitions


def main() -> None:
    created = asyncio.run(ensure_topics(ServiceSettings()))
    print("created: " + (", ".join(created) or "nothing, all topics exist"))


if __name__ == "__main__":
    main()

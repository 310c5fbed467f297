"""Create every topic of `TOPIC_SPECS` (idempotent), on any cluster.

`python -m ytmaker_shared.kafka.admin` does it with the settings from the environment.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import TOPIC_SPECS

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(settings: ServiceSettings) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
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
        created = []
        if wanted:
            response = await admin.create_topics(wanted)
            for name, code, *_ in response.topic_errors:
                if code == 0:
                    created.append(name)
                elif code != _TOPIC_ALREADY_EXISTS:  # a race with another creator is fine
                    raise for_code(code)(f"cannot create topic {name}")
            log.info("created topics", extra={"topics": created})
        await _wait_until_listed(admin, set(settings.topics.all()))
        return created
    finally:
        await admin.close()


async def _wait_until_listed(
    admin: AIOKafkaAdminClient, names: set[str], timeout_s: float = 30.0
) -> None:
    """Topic creation is asynchronous in the cluster: wait until metadata shows them all."""
    async with asyncio.timeout(timeout_s):
        while missing := names - set(await admin.list_topics()):
            log.debug("waiting for topics", extra={"missing": sorted(missing)})
            await asyncio.sleep(0.1)


def main() -> None:
    created = asyncio.run(ensure_topics(ServiceSettings()))
    print("created: " + (", ".join(created) or "nothing, all topics exist"))


if __name__ == "__main__":
    main()

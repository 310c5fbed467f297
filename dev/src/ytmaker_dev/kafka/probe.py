"""Is a broker there? A TCP check of a port, and a real client bootstrap."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
from typing import Any

from .errors import BrokerStartError


def port_accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on *host*:*port* within *timeout* seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


async def aprobe(bootstrap_servers: str, timeout: float = 10.0, **client: Any) -> None:
    """Bootstrap an admin client, describe the cluster and list topics; raise on any failure.

    Succeeds only when the cluster has at least one live (unfenced) broker. `client`: more
    of the admin client's arguments (a SASL user)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="ytmaker-devkafka-probe",
        request_timeout_ms=max(1000, int(timeout * 1000)),
        **client,
    )
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            info = await admin.describe_cluster()
            if not info.get("brokers"):
                raise BrokerStartError(f"{bootstrap_servers}: cluster has no live broker yet")
            await admin.list_topics()
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def probe(bootstrap_servers: str, timeout: float = 10.0, **client: Any) -> bool:
    """Blocking :func:`aprobe`: True when a client can bootstrap from *bootstrap_servers*.

    Runs its own event loop in a worker thread, so it may be called from inside a running
    event loop (it then blocks that loop for at most *timeout* seconds).
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="devkafka-probe") as pool:
        future = pool.submit(asyncio.run, aprobe(bootstrap_servers, timeout, **client))
        try:
            future.result()
        except Exception:
            return False
    return True

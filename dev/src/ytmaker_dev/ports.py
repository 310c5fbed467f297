"""Local TCP ports for servers started as separate processes (the dev broker, tests, benchmarks).

A port found by binding port 0 comes from the kernel's ephemeral range, the range every
outgoing connection on the machine also draws from. Handing such a port to a process that
binds it seconds later is a race: a Kafka client's connection opened in between may take it
(CI lost the progress pod of the deployment test to exactly that: "Address already in use").
The ports given here lie below the ephemeral range, where the kernel never picks one by
itself, and are not given twice by one process.

And they are this machine's: `exempt_loopback_from_proxies` keeps a proxy the environment
names (`HTTP(S)_PROXY`, for the packages and the external services) from being asked for them.
"""

from __future__ import annotations

import random
import socket
from collections.abc import MutableMapping
from pathlib import Path

_LOWEST = 20_000  # above the well-known and registered ports the tools here use (19092...)
_given: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now and that the kernel will not hand out.

    Another process may still bind it first: `LocalKafka.start` reports that as `PortInUseError`.
    """
    end = _ephemeral_start()
    for _ in range(1_000 if end > _LOWEST + 1_000 else 0):
        port = random.randrange(_LOWEST, end)  # random: test processes at once rarely collide
        if port in _given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket() as sock:  # a machine whose ephemeral range starts low: the old way
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: This machine's names. A proxy the environment names (for the packages, the external
#: services) is elsewhere: asked for one of these, it would reach its own machine.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def exempt_loopback_from_proxies(env: MutableMapping[str, str]) -> None:
    """Adds this machine's names to `NO_PROXY` (both spellings, which tools read differently),
    so that calls between the processes of a local run or a test go straight, whatever proxy
    `HTTP(S)_PROXY` names."""
    listed = f"{env.get('no_proxy', '')},{env.get('NO_PROXY', '')},{','.join(LOOPBACK)}"
    hosts = dict.fromkeys(h.strip() for h in listed.split(",") if h.strip())
    env["NO_PROXY"] = env["no_proxy"] = ",".join(hosts)

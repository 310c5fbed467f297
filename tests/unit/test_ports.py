"""The ports handed to servers started as separate processes (ytmaker_dev.ports)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ytmaker_dev import ports


def test_a_port_lies_below_the_range_the_kernel_gives_out_and_is_not_given_twice() -> None:
    start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    given = [ports.free_port() for _ in range(200)]
    assert all(20_000 <= port < start for port in given)
    assert len(set(given)) == len(given)


def test_a_port_something_listens_on_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        tries = iter([busy, busy, 24_681])
        monkeypatch.setattr(ports.random, "randrange", lambda _low, _high: next(tries))
        monkeypatch.setattr(ports, "_given", set())
        assert ports.free_port() == 24_681


def test_a_machine_whose_ephemeral_range_starts_low_still_gets_a_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ports, "_ephemeral_start", lambda: 1_024)
    port = ports.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free: nothing listens on it


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, "127.0.0.1,localhost,::1"),
        ({"NO_PROXY": "corp.example, .svc"}, "corp.example,.svc,127.0.0.1,localhost,::1"),
        ({"no_proxy": "a", "NO_PROXY": "b,localhost"}, "a,b,localhost,127.0.0.1,::1"),
    ],
)
def test_this_machine_joins_the_hosts_no_proxy_lists_in_both_spellings(
    before: dict[str, str], after: str
) -> None:
    env = dict(before)
    ports.exempt_loopback_from_proxies(env)
    assert env["NO_PROXY"] == env["no_proxy"] == after

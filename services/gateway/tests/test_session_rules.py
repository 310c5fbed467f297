"""The per-connection rules without a socket: frames, times and counts in, verdicts out
(rules/session.py), and what a connection watches, with its metric (fanout/watching.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ytmaker_gateway import metrics
from ytmaker_gateway.fanout.client_queue import ClientQueue
from ytmaker_gateway.fanout.hub import Hub
from ytmaker_gateway.fanout.subscription import ProjectFeed, Subscription
from ytmaker_gateway.fanout.watching import Watching
from ytmaker_gateway.rules.position import StreamPosition
from ytmaker_gateway.rules.protocol import CLOSE_POLICY, CLOSE_TOO_BIG
from ytmaker_gateway.rules.session import Close, Refuse, SessionLimits, SessionRules
from ytmaker_gateway.settings import GatewaySettings

LIMITS = SessionLimits(
    max_messages_per_second=5,
    max_violations=2,
    max_subscriptions=2,
    heartbeat_interval_s=10,
    max_frame_bytes=100,
)


def _rules(**kw: bool) -> SessionRules:
    return SessionRules(LIMITS, now=1000.0, rate_now=0.0, **kw)


def test_a_burst_of_one_seconds_worth_passes_then_the_rate_is_a_violation() -> None:
    rules = _rules()
    assert [rules.received(10, now=1000.0, rate_now=0.0) for _ in range(5)] == [None] * 5
    assert rules.received(10, now=1000.0, rate_now=0.0) == Refuse(
        "rate_limited", "too many messages per second"
    )
    # The bucket refills at the rate: a fifth of a second later there is one token again.
    assert rules.received(10, now=1000.2, rate_now=0.2) is None


def test_violations_in_a_row_close_and_a_message_within_the_rate_forgives_them() -> None:
    rules = _rules()
    for _ in range(5):
        rules.received(10, now=1000.0, rate_now=0.0)
    assert isinstance(rules.received(10, now=1000.0, rate_now=0.0), Refuse)
    assert isinstance(rules.received(10, now=1000.0, rate_now=0.0), Refuse)
    assert rules.received(10, now=1000.2, rate_now=0.2) is None  # forgiven
    assert rules.violations == 0
    verdicts = [rules.received(10, now=1000.2, rate_now=0.2) for _ in range(3)]
    assert verdicts[:2] == [Refuse("rate_limited", "too many messages per second")] * 2
    assert verdicts[2] == Close(CLOSE_POLICY, "rate_limited: closing", "rate_limited")


def test_an_oversize_frame_closes_and_is_not_counted_against_the_rate() -> None:
    rules = _rules()
    assert rules.received(101, now=1000.0, rate_now=0.0) == Close(
        CLOSE_TOO_BIG, "frame too large", "oversize"
    )
    assert rules.received(100, now=1000.0, rate_now=0.0) is None


def test_the_subscription_cap_counts_new_tasks_only() -> None:
    rules = _rules()
    assert rules.may_subscribe("a", set())
    assert rules.may_subscribe("b", {"a"})
    assert not rules.may_subscribe("c", {"a", "b"})
    assert rules.may_subscribe("a", {"a", "b"})  # a re-subscribe


def test_a_project_stream_takes_pings_only() -> None:
    stream, socket = _rules(project_stream=True), _rules()
    assert stream.accepts("ping") and stream.accepts("pong")
    assert not any(stream.accepts(a) for a in ("subscribe", "unsubscribe", "cancel"))
    assert all(socket.accepts(a) for a in ("subscribe", "unsubscribe", "cancel", "ping"))


def test_silence_for_two_intervals_closes_and_any_frame_is_a_sign_of_life() -> None:
    rules = _rules()
    assert not rules.beat(1010.0, sent=1, replaying=False)
    assert not rules.beat(1020.0, sent=2, replaying=False)
    assert rules.beat(1020.1, sent=2, replaying=False)
    rules.received(2, now=1020.1, rate_now=20.1)
    assert not rules.beat(1030.0, sent=3, replaying=False)


def test_a_client_reading_a_replay_is_alive_though_its_pongs_wait() -> None:
    rules = _rules()
    for n, now in enumerate((1010.0, 1020.0, 1030.0, 1040.0), start=1):
        assert not rules.beat(now, sent=1000 * n, replaying=True)
    # The replay stalls (the client stopped reading): two silent intervals close it.
    assert not rules.beat(1050.0, sent=4000, replaying=True)
    assert rules.beat(1060.0, sent=4001, replaying=True)


def test_a_client_taking_what_was_written_ahead_is_alive_until_it_stops() -> None:
    """The replay is over, but its end waits in the socket's buffers (the backlog), the ping
    behind it: a client whose backlog shrinks is reading."""
    rules = _rules()
    for n, now in enumerate((1010.0, 1020.0, 1030.0, 1040.0)):
        assert not rules.beat(now, sent=5, replaying=False, backlog=4_000_000 - 1_000_000 * n)
    # It stopped reading: the backlog stays where it was; two silent intervals close it.
    assert not rules.beat(1050.0, sent=5, replaying=False, backlog=1_000_000)
    assert rules.beat(1060.0, sent=5, replaying=False, backlog=1_000_000)


def test_the_limits_come_from_the_settings() -> None:
    settings = GatewaySettings(max_subscriptions=7, max_violations=6)
    limits = SessionLimits.of(settings)
    assert (limits.max_subscriptions, limits.max_violations) == (7, 6)
    assert limits.heartbeat_interval_s == settings.heartbeat_interval_s


@pytest.mark.parametrize(
    ("position", "epoch", "resumable"),
    [
        (StreamPosition(), "E", False),
        (StreamPosition(3), "E", True),
        (StreamPosition(3, "E"), "E", True),
        (StreamPosition(3, "E"), None, True),
        (StreamPosition(3, "old"), "E", False),
        (StreamPosition(-1, "E"), "E", True),
    ],
)
def test_an_offset_resumes_only_in_its_own_epoch(
    position: StreamPosition, epoch: str | None, resumable: bool
) -> None:
    assert position.resumable_in(epoch) is resumable


async def _nothing(_: str) -> None:
    return None


def test_watching_pairs_registration_with_the_watchers_metric() -> None:
    hub = Hub(GatewaySettings())
    hub.positions = {0: 0}
    queue = ClientQueue(_nothing, maxsize=10)
    watching = Watching(hub)
    before = metrics.PROJECT_WATCHERS._value.get()

    first = Subscription("t1", queue, limit=10)
    hub.register(first)
    watching.attach(first)
    feed = ProjectFeed("p1", queue, limit=10)
    hub.register_project(feed)
    watching.watch_project(feed)
    assert metrics.PROJECT_WATCHERS._value.get() == before + 2
    assert "t1" in watching and len(watching) == 1

    again = Subscription("t1", queue, limit=10)  # a re-subscribe replaces the first
    hub.register(again)
    watching.attach(again)
    assert first.cancelled and metrics.PROJECT_WATCHERS._value.get() == before + 2
    assert hub.stats()["subscribed_tasks"] == 1

    watching.discard(first)  # no longer held: nothing happens
    assert not again.cancelled
    watching.close()
    assert again.cancelled and len(watching) == 0 and watching.feed is None
    assert hub.stats() == {"partitions": 1, "subscribed_tasks": 0, "project_streams": 0}
    assert metrics.PROJECT_WATCHERS._value.get() == before
    watching.close()  # twice is harmless
    assert metrics.PROJECT_WATCHERS._value.get() == before


def test_fewer_violations_than_the_sdks_subscribes_in_flight_are_refused() -> None:
    """The SDKs keep 4 subscribes waiting for their answer; each may be refused (a full
    connection's `too_many_subscriptions`), so a gateway closing after 3 would close a client
    that paced itself as it should (decision 0135)."""
    with pytest.raises(ValidationError, match="greater than or equal to 4"):
        GatewaySettings(max_violations=3)
    assert GatewaySettings(max_violations=4).max_violations == 4

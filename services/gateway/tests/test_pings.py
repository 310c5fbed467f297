"""The ping ledger (rules/pings.py): what a pong vouches for, whatever the client sends."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ytmaker_gateway.rules.pings import PingLedger

KEPT = 4


def test_an_echo_answers_its_ping_and_the_older_ones_a_plain_pong_the_oldest() -> None:
    ledger = PingLedger[str](kept=KEPT)
    for n in range(1, 4):
        ledger.sent(100.0 + n, f"before ping {n}")
    assert ledger.answer(55.5) is None  # no ping carried it
    assert ledger.answer(102.0) == "before ping 2"  # and ping 1 with it
    assert ledger.answer(101.0) is None  # answered already
    assert len(ledger) == 1
    assert ledger.answer(None) == "before ping 3"  # a client that does not echo
    assert ledger.answer(None) is None  # no ping in flight


def test_pings_let_go_to_make_room_are_answered_by_nothing() -> None:
    ledger = PingLedger[int](kept=KEPT)
    for n in range(1, 7):
        ledger.sent(float(n), n)
    assert len(ledger) == KEPT
    assert ledger.answer(1.0) is None  # let go: its echo vouches for nothing
    assert ledger.answer(None) is None  # nor the plain answer to ping 1
    assert ledger.answer(None) is None  # ping 2, let go too
    assert ledger.answer(None) == 3
    assert ledger.answer(6.0) == 6


# What happens on a connection, in any order: the server queues a ping; the client reads the
# next ping queued; it answers, echoing the latest ping it read, an older one it read, a
# timestamp no ping carried, or nothing.
DOINGS = st.lists(st.sampled_from(["ping", "read", "echo", "stale", "stray", "plain"]), max_size=80)


@given(DOINGS, st.data())
def test_a_pong_never_vouches_for_a_ping_it_does_not_echo_nor_goes_back(
    doings: list[str], data: st.DataObject
) -> None:
    """The guarantee a restore rests on: an echoing client is vouched for only what came
    before a ping it has read, and what is vouched for only moves forward."""
    ledger = PingLedger[int](kept=KEPT)
    sent: list[float] = []  # ping n's timestamp is sent[n - 1]
    read = 0  # pings the client has read, in order
    latest = 0  # the ping a pong last vouched for
    for doing in doings:
        if doing == "ping":
            sent.append(1000.0 + len(sent) + data.draw(st.floats(0, 0.99)))
            ledger.sent(sent[-1], len(sent))
        elif doing == "read":
            read = min(read + 1, len(sent))
        elif doing in ("echo", "stale") and read:
            n = read if doing == "echo" else data.draw(st.integers(1, read))
            vouched = ledger.answer(sent[n - 1])
            if vouched is None:  # already answered, or let go to make room
                assert n <= latest or n <= len(sent) - KEPT
            else:
                assert vouched == n > latest
                latest = vouched
        elif doing == "stray":
            assert ledger.answer(data.draw(st.floats(-1e12, 999.0) | st.floats(2e9, 1e12))) is None
        elif doing == "plain":  # the old rule: trusted to answer one per ping, in order
            vouched = ledger.answer(None)
            if vouched is not None:
                assert vouched > latest
                latest = vouched
        assert len(ledger) <= KEPT

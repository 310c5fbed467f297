"""Times on the command line (`replay --since/--until`): a duration too long ago is bad usage
(one line, exit 2), not an unexpected OverflowError; a time before 1970 is 0 ms, the lowest
timestamp Kafka holds (a negative one is refused by a look-up by time)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ytmaker_cli.main import main
from ytmaker_cli.ops.timeparse import parse_time, to_ms


@pytest.mark.parametrize("ago", ["99999999999d", "3000000d"])
def test_a_duration_too_long_ago_is_bad_usage(ago: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="too long ago"):
        parse_time(ago)
    # Refused before Kafka is asked: no broker needed.
    assert main(["--bootstrap", "127.0.0.1:1", "replay", "--since", ago]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "too long ago" in err and err.count("\n") == 1


def test_a_time_before_1970_is_the_log_start() -> None:
    assert to_ms(parse_time("1960-01-01")) == 0
    assert to_ms(datetime(2026, 1, 5, 10, tzinfo=UTC)) == 1_767_607_200_000

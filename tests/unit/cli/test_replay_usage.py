"""`ytmaker replay --verify` audits whole tasks: the options that would cut its read (topics,
partitions, offsets, times, types, a limit) are refused as bad usage (exit 2, one line naming
them) before Kafka is asked anything, instead of being silently ignored; `--task`,
`--project`, `--clock-skew` and `--json` are what it takes. `--clock-skew` alone is refused
the same way: only the audit reads it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ytmaker_cli.audit.report import Report
from ytmaker_cli.audit.verify import Scope
from ytmaker_cli.main import main
from ytmaker_cli.ops import replay

#: Nothing listens there: a command that got as far as Kafka would fail on it (exit 1).
NOWHERE = ["--bootstrap", "127.0.0.1:9"]


@pytest.fixture
def audits(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The audits the command ran (with what it was asked), none reaching Kafka."""
    calls: list[dict[str, Any]] = []

    async def fake_verify(bootstrap: str, topics: object, **kwargs: Any) -> Report:
        calls.append(kwargs)
        return Report()

    monkeypatch.setattr(replay, "verify", fake_verify)
    return calls


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["pipeline.tasks"], "topic arguments"),
        (["progress.updates", "pipeline.render"], "topic arguments"),
        (["--partition", "0"], "--partition"),
        (["--from-offset", "5"], "--from-offset"),
        (["--to-offset", "5"], "--to-offset"),
        (["--since", "1h"], "--since"),
        (["--until", "2026-01-01"], "--until"),
        (["--type", "stage.completed"], "--type"),
        (["--limit", "10"], "--limit"),
    ],
)
def test_verify_refuses_an_option_that_would_audit_part_of_the_log(
    extra: list[str],
    named: str,
    audits: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main([*NOWHERE, "replay", "--verify", *extra])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert audits == [] and out == ""
    assert err.startswith("error: --verify ") and err.count("\n") == 1, err
    assert named in err and "Traceback" not in err


def test_verify_names_every_refused_option_at_once(
    audits: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*NOWHERE, "replay", "--verify", "--since", "1h", "--type", "x", "--json"])
    err = capsys.readouterr().err
    assert code == 2 and audits == []
    refused = err.split(", not ", 1)[1]
    assert refused == "--since, --type\n", err  # --json is not among them


def test_verify_takes_task_project_clock_skew_and_json(
    audits: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            *NOWHERE,
            "replay",
            "--verify",
            "--task",
            "t-1",
            "--project",
            "p-1",
            "--clock-skew",
            "2.5",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [(a["scope"], a["skew"]) for a in audits] == [
        (Scope("t-1", "p-1"), timedelta(seconds=2.5))
    ]
    assert '"ok": true' in out


def test_clock_skew_without_verify_is_refused(
    audits: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*NOWHERE, "replay", "pipeline.tasks", "--clock-skew", "5"])
    err = capsys.readouterr().err
    assert code == 2 and audits == []
    assert err.startswith("error: --clock-skew ") and "--verify" in err, err


def test_help_says_what_verify_takes(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "takes only --task, --project, --clock-skew and --json" in text, text

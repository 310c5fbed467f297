"""The projects this command line submitted, for `ytmaker runs` (the gateway has no endpoint
that lists a user's projects yet): one JSON line per run, in the state directory."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ytmaker_cli.context import state_dir


@dataclass(frozen=True)
class Submitted:
    url: str
    project_id: str
    task_id: str
    title: str
    submitted_at: str


def _file() -> Path:
    return state_dir() / "runs.jsonl"


def remember(url: str, project_id: str, task_id: str, title: str) -> None:
    """Record a run; a state directory that cannot be written is not an error."""
    entry = Submitted(url, project_id, task_id, title, datetime.now(UTC).isoformat())
    try:
        _file().parent.mkdir(parents=True, exist_ok=True)
        with _file().open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(entry)) + "\n")
    except OSError:
        pass


def projects(url: str) -> list[str]:
    """Project ids submitted to the gateway at `url`, newest first, each once."""
    try:
        lines = _file().read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    seen: dict[str, None] = {}
    for raw in reversed(lines):
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("url") == url and entry.get("project_id"):
            seen.setdefault(str(entry["project_id"]), None)
    return list(seen)

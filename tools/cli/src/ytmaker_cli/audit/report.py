"""What an audit finds: violations with the coordinates of the record at fault, and counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class Coord:
    """Where a record is: logical topic, partition, offset."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


#: The checks, in the order the report lists them.
CHECKS = ("envelope", "key", "topic", "partition", "order", "causation", "state", "fold")


@dataclass(frozen=True)
class Violation:
    check: str
    coord: Coord | None
    task_id: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "topic": self.coord.topic if self.coord else None,
            "partition": self.coord.partition if self.coord else None,
            "offset": self.coord.offset if self.coord else None,
            "task_id": self.task_id,
            "message": self.message,
        }


@dataclass
class Report:
    records: Counter[str] = field(default_factory=Counter)  # per topic
    events: Counter[str] = field(default_factory=Counter)  # per event type
    upcast: Counter[int] = field(default_factory=Counter)  # per schema version read
    tasks: int = 0
    updates: int = 0
    pending: int = 0  # input events the fold had not reached when the audit read its position
    after_end: int = 0  # stage events after a failed or cancelled task (ignored by the fold)
    partial_tasks: int = 0  # tasks whose start is before the log's start (retention)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, check: str, coord: Coord | None, task_id: str | None, message: str) -> None:
        self.violations.append(Violation(check, coord, task_id, message))

    def sorted_violations(self) -> list[Violation]:
        def key(v: Violation) -> tuple[int, Coord, str]:
            return CHECKS.index(v.check), v.coord or Coord("", -1, -1), v.message

        return sorted(self.violations, key=key)

    def by_check(self) -> dict[str, int]:
        counts = Counter(v.check for v in self.violations)
        return {check: counts.get(check, 0) for check in CHECKS}

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": dict(self.records),
            "events": dict(self.events),
            "schema_versions_read": {str(k): v for k, v in sorted(self.upcast.items())},
            "tasks": self.tasks,
            "updates": self.updates,
            "pending": self.pending,
            "after_failed_or_cancelled": self.after_end,
            "partial_tasks": self.partial_tasks,
            "violations_by_check": self.by_check(),
            "violations": [v.as_dict() for v in self.sorted_violations()],
        }

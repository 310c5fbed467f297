"""One progress update as it travels through the gateway: decoded once, encoded once.

The hub turns every record of `progress.updates` into a `Delivery` whose `text` is the finished
server message, so that a thousand subscribers cost a thousand queue puts, not a thousand
JSON encodings.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from ytmaker_gateway.protocol import update_message
from ytmaker_shared.progress import ProgressUpdate


class BadUpdate(ValueError):
    """A record on progress.updates that is not a ProgressUpdate."""


@dataclass(frozen=True, slots=True)
class Delivery:
    partition: int
    offset: int
    task_id: str
    project_id: str
    owner: str
    kind: str
    terminal: bool
    occurred_at: float
    text: str


def delivery_from_record(
    partition: int, offset: int, value: bytes | None, epoch: str | None
) -> Delivery:
    """Decode one record of progress.updates; raises BadUpdate."""
    if value is None:
        raise BadUpdate("the record has no value")
    try:
        update = ProgressUpdate.model_validate_json(value)
    except ValidationError as exc:
        raise BadUpdate(f"not a ProgressUpdate: {exc.error_count()} errors") from None
    return Delivery(
        partition=partition,
        offset=offset,
        task_id=update.task_id,
        project_id=update.project_id,
        owner=update.owner,
        kind=update.type.value,
        terminal=update.state.status.terminal,
        occurred_at=update.occurred_at.timestamp(),
        text=update_message(update, offset, epoch),
    )

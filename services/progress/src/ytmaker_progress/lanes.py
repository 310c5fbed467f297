"""A lane: partition *p* of every input topic, the states of its tasks, and its writers.

Every pipeline topic is keyed by task_id and has the same number of partitions, so partition
*p* of every topic holds the same tasks: a lane. A lane lives on one fold member; it writes its
updates to `progress.updates` partition *p* and its checkpoints to `progress.state` partition
*p*, through two transactional producers (`<group>-lane-<p>` and `...-b`) that take turns:
while one commits a checkpoint the other carries the next updates (decision 0096); each fences
any zombie of its id.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from ytmaker_progress.folded import Folded
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.kafka.batches import PartitionWriter

#: The `max_batch_size` of a lane's producers, and so of its writers' batches.
BATCH_BYTES = 256 * 1024


@dataclass
class Commit:
    """A transaction handed over for its checkpoint: `acked` is set once the broker has its
    updates (the next transaction's updates must follow them in the log), `task` ends with
    True once committed, False if it failed."""

    task: asyncio.Task[bool]
    acked: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Lane:
    """One lane's state (the tasks), inbox (records fetched, not folded yet) and transaction.

    Memory stays bounded (docs/decisions/0025-progress-memory.md): a task that has finished
    keeps its full state for a grace period (`ended`: since when, by the monotonic clock),
    then only a marker (`finished`: task id → since when) that makes later events of it be
    ignored, as the fold would ignore them; markers go after the input topics' retention.
    `progress.state` follows (decision 0100): the next checkpoint replaces an evicted task's
    state by a marker record and deletes the task once its marker has gone (`retired`), so
    that what a restore reads does not grow with every task ever run.
    """

    number: int
    producers: tuple[EventProducer, EventProducer]  # transactional, taking turns (0096)

    # --- the tasks -------------------------------------------------------------------------
    states: dict[str, Folded] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    #: Tasks whose `progress.state` record the next checkpoint replaces: by a marker (task id
    #: → its final status) or by nothing (None: a tombstone).
    retired: dict[str, str | None] = field(default_factory=dict)

    # --- the inbox (FoldService hands records out; `release` decides what goes) ------------
    held: dict[TopicPartition, list[Any]] = field(default_factory=dict)
    # Per input partition: the latest record timestamp delivered (timestamps of one partition
    # need not grow: producers' clocks differ) and when it last delivered (monotonic clock).
    watermarks: dict[TopicPartition, int] = field(default_factory=dict)
    delivered: dict[TopicPartition, float] = field(default_factory=dict)
    opened: float = field(default_factory=time.monotonic)
    released: float = field(default_factory=time.monotonic)  # when held records last went

    # --- where it stands ------------------------------------------------------------------
    #: The next offset to fold, per input: after every event folded so far.
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    #: The open transaction (of `producer`): its updates writer, the tasks it changed, when
    #: it began.
    updates: PartitionWriter | None = None
    touched: dict[str, Folded] = field(default_factory=dict)
    began: float = 0.0
    turn: int = 0  # which of `producers` holds the open transaction
    #: The previous transaction, handed over to commit its checkpoint in the background.
    committing: Commit | None = None
    updates_end: int | None = None  # after the last update of the last checkpoint
    reported_at: float = 0.0  # when `positions` last went to the consumer group

    # --- its task (FoldService._work) and how the polling loop talks to it ------------------
    worker: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False
    failed: bool = False  # a write failed: the polling loop recovers the lane
    fenced: bool = False  # ... because a newer producer of its transactional id fenced it

    @property
    def producer(self) -> EventProducer:
        """The producer whose turn it is: the open transaction's, or the next one's."""
        return self.producers[self.turn]

    @property
    def in_transaction(self) -> bool:
        return self.updates is not None

    @property
    def unsaved(self) -> bool:
        """Something for the next checkpoint: an open transaction, states the restore
        adopted from updates after the last checkpoint (`restore.py`), which `progress.state`
        must hold even if the lane never folds again, or retired tasks' records."""
        return self.updates is not None or bool(self.touched) or bool(self.retired)

    def keep(self, task_id: str, folded: Folded, now: float) -> None:
        """Hold the task's new state; a task that just finished starts its grace period."""
        self.states[task_id] = folded
        self.touched[task_id] = folded
        if folded.task.status.terminal and task_id not in self.ended:
            self.ended[task_id] = now

    def evict(self, now: float, grace_s: float, marker_s: float) -> int:
        """Replace finished tasks older than `grace_s` by markers, forget markers older than
        `marker_s` (and their records: `retired`); returns how many states were evicted. Both
        dicts are in time order."""
        evicted = 0
        for task_id, since in list(self.ended.items()):
            if now - since < grace_s:
                break
            del self.ended[task_id]
            folded = self.states.pop(task_id, None)
            self.finished[task_id] = now
            if folded is not None:
                self.retired[task_id] = folded.task.status.value
            evicted += 1
        for task_id, since in list(self.finished.items()):
            if now - since < marker_s:
                break
            del self.finished[task_id]
            self.retired[task_id] = None
        return evicted

    def forget(self) -> None:
        """Drop the tasks and positions before a restore fills them again."""
        self.states, self.ended, self.finished, self.positions = {}, {}, {}, {}
        self.touched, self.retired = {}, {}

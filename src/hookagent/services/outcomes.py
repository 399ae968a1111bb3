"""What a delivery came to: the outcomes intake returns, and the route turns into answers."""

from __future__ import annotations

from dataclasses import dataclass

from hookagent.models import ActionResult, Task, TaskStatus


@dataclass(frozen=True, slots=True)
class Created:
    """A new task was queued (``counted``: and counted as a created webhook by the store)."""

    task: Task
    counted: bool = False


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The delivery was seen before, or an open task exists for its incident."""

    task_id: str | None
    status: TaskStatus | None
    detail: str


@dataclass(frozen=True, slots=True)
class Applied:
    """A command changed the task's status."""

    result: ActionResult


@dataclass(frozen=True, slots=True)
class Reported:
    """A ``status`` command: the task as it is."""

    task: Task


@dataclass(frozen=True, slots=True)
class Outdated:
    """A command written before what it would act on existed, or an event for no task (None).

    It changes nothing.
    """

    task_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Gathered:
    """Review feedback stored for the task's next round (``queued``: it queued the round)."""

    task_id: str
    queued: bool


Outcome = Created | Duplicate | Applied | Reported | Outdated | Gathered

"""What the task API accepts and answers, separate from the stored task it reads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hookagent.models.rounds import TaskRounds
from hookagent.models.task import StatusChange, Task, TaskKind
from hookagent.models.transitions import TaskStatus


class StatusMetadata(BaseModel):
    """The ``metadata`` object of the seed's status response."""

    status: TaskStatus
    updated_at: str
    plan: str | None
    queue: str
    attempt: int
    error: str | None = None
    progress: dict[str, Any] | None = None


class TaskStatusResponse(BaseModel):
    """The seed's ``GET /tasks/{id}/status`` response."""

    task_id: str
    status: TaskStatus
    metadata: StatusMetadata


class TaskDetail(Task):
    """``GET /tasks/{id}``: the task, its status history, log count and review rounds."""

    history: list[StatusChange] = Field(default_factory=list)
    plans: list[str] = Field(default_factory=list)
    log_total: int = 0
    rounds: TaskRounds = Field(default_factory=TaskRounds)


class TaskSummary(BaseModel):
    """A row of ``GET /tasks/``."""

    task_id: str
    status: TaskStatus
    source: str
    repository: str
    title: str
    created_at: str
    updated_at: str
    kind: TaskKind = TaskKind.CHANGE
    # For boards: where it came from, what it cost, how it ended.
    url: str | None = None
    total_cost_usd: float | None = None
    duration_ms: int | None = None
    pr_url: str | None = None
    branch: str | None = None


class TaskList(BaseModel):
    """``GET /tasks/`` response, newest first."""

    tasks: list[TaskSummary]
    count: int


class WebhookAccepted(BaseModel):
    """What a webhook delivery gets back."""

    task_id: str
    status: TaskStatus


class ActionRequest(BaseModel):
    """Body of approve/reject/revise/cancel/retry; every field is optional."""

    comment: str | None = Field(default=None, max_length=10_000)
    reason: str | None = Field(default=None, max_length=10_000)
    feedback: str | None = Field(default=None, max_length=10_000)
    # Accepted for old clients but ignored: the log names the authenticated token.
    actor: str | None = Field(default=None, max_length=200)


class ActionResult(BaseModel):
    """What a lifecycle action answers: the task's new status."""

    task_id: str
    status: TaskStatus
    previous: TaskStatus

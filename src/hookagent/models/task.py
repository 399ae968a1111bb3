"""The task: what a source hands over, what is stored in its hash, and its history steps."""

from __future__ import annotations

import json
import secrets
import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from hookagent.models.transitions import Phase, TaskStatus


class TaskKind(StrEnum):
    """What a task delivers: a change (plan, approve, execute, pull request) or a review."""

    CHANGE = "change"
    # A read-only run on someone's pull request whose answer is posted as one review.
    REVIEW = "review"


class CheckResult(StrEnum):
    """How a check of the change before it ships (policy ``test``) ended."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_CONFIGURED = "not configured"


# Every agent hookagent can drive, as HOOKAGENT_AGENT and a policy's agent name them.
AGENTS = ("claude", "codex", "gemini", "command")


def new_task_id() -> str:
    """A unique ``task-`` id: creation time in ms plus 48 random bits."""
    return f"task-{time.time_ns() // 1_000_000}-{secrets.token_hex(6)}"


class NewTask(BaseModel):
    """What a webhook source hands over to become a task."""

    source: str
    repository: str
    title: str
    prompt: str
    external_id: str | None = None
    url: str | None = None
    agent: str | None = None
    # What auto-approve rules look at: the labels, the Sentry event's level.
    labels: list[str] = Field(default_factory=list)
    level: str | None = None
    # Where the change request is opened: GitHub unless the task came from GitLab.
    forge: str = "github"
    # The merged task whose incident came back (a Sentry alert after the merge).
    regression_of: str | None = None
    kind: TaskKind = TaskKind.CHANGE
    # A review task's pull (GitLab: merge) request number, in ``repository``.
    reviewed_pr: int | None = None


class StatusChange(BaseModel):
    """One step of a task's status history."""

    status: TaskStatus
    at: str
    reason: str | None = None
    attempt: int = 0


class Task(BaseModel):
    """A task as stored in its Redis hash."""

    task_id: str
    source: str
    repository: str
    title: str
    prompt: str
    status: TaskStatus
    created_at: str
    updated_at: str
    external_id: str | None = None
    url: str | None = None
    attempt: int = 0
    phase: Phase = Phase.PLAN
    plan: str | None = None
    result: str | None = None
    error: str | None = None
    feedback: str | None = None
    approver: str | None = None
    approval_comment: str | None = None
    branch: str | None = None
    commit: str | None = None
    pr_url: str | None = None
    pr_number: int | None = None
    # When the change request was opened and ended (merged or closed), as ``utc_iso``.
    pr_opened_at: str | None = None
    pr_ended_at: str | None = None
    # Follow-up rounds on the change request, and how many of them fixed a failing CI.
    review_rounds: int = 0
    ci_fixes: int = 0
    # The executed change's ``git diff --stat`` (redacted, capped), for a regression's prompt.
    diff_stat: str | None = None
    regression_of: str | None = None
    kind: TaskKind = TaskKind.CHANGE
    reviewed_pr: int | None = None
    # The review a review task posted: set the moment it is, so a rerun never posts twice.
    review_url: str | None = None
    forge: str = "github"
    agent: str | None = None
    session_id: str | None = None
    num_turns: int | None = None
    total_cost_usd: float | None = None
    duration_ms: int | None = None
    labels: list[str] = Field(default_factory=list)
    level: str | None = None
    # Checks run on the change before it shipped: ``{"test": "passed"}``; empty before.
    checks: dict[str, CheckResult] = Field(default_factory=dict)

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Task:
        """Build from a Redis hash whose values are all strings (lists stored as JSON)."""
        fields: dict[str, Any] = {k: v for k, v in data.items() if v != "" and k in FIELDS}
        for name in ("labels", "checks"):
            if name in fields:
                fields[name] = json.loads(fields[name])
        return cls.model_validate(fields)

    def to_hash(self) -> dict[str, str]:
        """The Redis hash fields (absent optionals are omitted, lists as JSON)."""
        return hash_fields(self.model_dump())


FIELDS = frozenset(Task.model_fields)
# Every optional field of a task at its default, but those made by a factory (a new list or
# dict each): with these, a task built from trusted values needs no default looked up.
TASK_DEFAULTS: dict[str, Any] = {
    name: field.default
    for name, field in Task.model_fields.items()
    if not field.is_required() and field.default_factory is None
}


def hash_fields(values: dict[str, Any]) -> dict[str, str]:
    """A task's fields (``Task.model_dump()``) as its Redis hash: no None, lists as JSON."""
    return {
        k: json.dumps(v) if isinstance(v, list | dict) else str(v)
        for k, v in values.items()
        if v is not None
    }

"""Task and log models: stored shapes, API schemas and the enums they use."""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    QUEUED = "queued"
    DISCOVERING = "discovering"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    # After the change request: a follow-up round runs, or the request was merged or closed.
    REVISING = "revising"
    MERGED = "merged"
    CLOSED = "closed"


TERMINAL_STATUSES = frozenset(
    {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.REJECTED,
        TaskStatus.CANCELLED,
        TaskStatus.MERGED,
        TaskStatus.CLOSED,
    }
)


class TaskKind(StrEnum):
    """What a task delivers: a change (plan, approve, execute, pull request) or a review."""

    CHANGE = "change"
    # A read-only run on someone's pull request whose answer is posted as one review.
    REVIEW = "review"


class LogStream(StrEnum):
    """Which pipe (or hookagent itself) a log line came from."""

    STDOUT = "stdout"
    STDERR = "stderr"
    SYSTEM = "system"
    # The policy's ``test`` command, run in the sandbox after execution.
    TEST = "test"
    SETUP = "setup"  # the setup command's output, both pipes


class EventKind(StrEnum):
    """What an agent's output line means, when the adapter can tell."""

    TEXT = "text"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    THINKING = "thinking"
    RESULT = "result"
    ERROR = "error"
    RAW = "raw"
    STATUS = "status"


class CheckResult(StrEnum):
    """How a check of the change before it ships (policy ``test``) ended."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_CONFIGURED = "not configured"


class Phase(StrEnum):
    """A job's phase: planning (read-only), execution (edits, commit, push, PR), or a round.

    A round answers review feedback on the change request: it edits, commits and pushes
    on the request's own branch (worker/rounds.py).
    """

    PLAN = "plan"
    EXECUTE = "execute"
    ROUND = "round"


# The seed's ``metadata.queue`` names; every phase travels on one job stream so a worker
# waits on a single XREADGROUP, and the name follows from the task's phase.
# Every agent hookagent can drive, as HOOKAGENT_AGENT and a policy's agent name them.
AGENTS = ("claude", "codex", "gemini", "command")
PHASE_QUEUES = {
    Phase.PLAN: "planning-queue",
    Phase.EXECUTE: "execution-queue",
    Phase.ROUND: "review-queue",
}


class Action(StrEnum):
    """Everything that may move a task from one status to another."""

    START_PLAN = "start_plan"
    PLAN_READY = "plan_ready"
    FAIL_PLAN = "fail_plan"
    APPROVE = "approve"
    REJECT = "reject"
    REVISE = "revise"
    EXPIRE = "expire"
    START_EXECUTE = "start_execute"
    COMPLETE = "complete"
    FAIL_EXECUTE = "fail_execute"
    CANCEL = "cancel"
    RETRY_PLAN = "retry_plan"
    RETRY_EXECUTE = "retry_execute"
    HOLD_CHANGE = "hold_change"
    START_ROUND = "start_round"
    FINISH_ROUND = "finish_round"
    MERGE = "merge"
    CLOSE = "close"
    FINISH_REVIEW = "finish_review"


@dataclass(frozen=True, slots=True)
class Transition:
    """The statuses an action may start from and the status it leads to."""

    allowed: frozenset[TaskStatus]
    to: TaskStatus


_S = TaskStatus
_PLANNING = frozenset({_S.QUEUED, _S.DISCOVERING})
_EXECUTING = frozenset({_S.APPROVED, _S.EXECUTING})
_OPEN = frozenset(s for s in TaskStatus if s not in TERMINAL_STATUSES)
_ENDED_BADLY = frozenset({_S.FAILED, _S.CANCELLED})
_DELIVERED = frozenset({_S.COMPLETED, _S.REVISING})
# The change request is open: review feedback is taken, and a round may run.
CHANGE_OPEN = _DELIVERED

# The one table of what may happen in which status; the transition script receives its row.
# A phase's start is allowed from its running status too: a reclaimed job starts again.
TRANSITIONS: dict[Action, Transition] = {
    Action.START_PLAN: Transition(_PLANNING, _S.DISCOVERING),
    Action.PLAN_READY: Transition(_PLANNING, _S.PENDING_APPROVAL),
    Action.FAIL_PLAN: Transition(_PLANNING, _S.FAILED),
    Action.APPROVE: Transition(frozenset({_S.PENDING_APPROVAL}), _S.APPROVED),
    Action.REJECT: Transition(frozenset({_S.PENDING_APPROVAL}), _S.REJECTED),
    Action.REVISE: Transition(frozenset({_S.PENDING_APPROVAL}), _S.QUEUED),
    Action.EXPIRE: Transition(frozenset({_S.PENDING_APPROVAL}), _S.CANCELLED),
    Action.START_EXECUTE: Transition(_EXECUTING, _S.EXECUTING),
    Action.COMPLETE: Transition(_EXECUTING, _S.COMPLETED),
    Action.FAIL_EXECUTE: Transition(_EXECUTING, _S.FAILED),
    Action.CANCEL: Transition(_OPEN, _S.CANCELLED),
    Action.RETRY_PLAN: Transition(_ENDED_BADLY, _S.QUEUED),
    Action.RETRY_EXECUTE: Transition(_ENDED_BADLY, _S.APPROVED),
    # An auto-approved execution whose change no rule allows waits for a person instead.
    Action.HOLD_CHANGE: Transition(frozenset({_S.EXECUTING}), _S.PENDING_APPROVAL),
    # After the change request is open: ``completed`` means the change is delivered; a
    # follow-up round (review, CI) runs in ``revising`` and delivers again; the forge's
    # merge or close ends the task, whether or not a round is running.
    # From ``revising`` too: a reclaimed round starts again (one round job exists per task
    # at a time, store/reviews.py, so two rounds never run at once).
    Action.START_ROUND: Transition(_DELIVERED, _S.REVISING),
    Action.FINISH_ROUND: Transition(frozenset({_S.REVISING}), _S.COMPLETED),
    Action.MERGE: Transition(_DELIVERED, _S.MERGED),
    Action.CLOSE: Transition(_DELIVERED, _S.CLOSED),
    # A review task runs as planning does and ends ``completed`` once its review is posted.
    Action.FINISH_REVIEW: Transition(frozenset({_S.DISCOVERING}), _S.COMPLETED),
}
START = {
    Phase.PLAN: Action.START_PLAN,
    Phase.EXECUTE: Action.START_EXECUTE,
    Phase.ROUND: Action.START_ROUND,
}
# A round that fails leaves the change request as it was: the task is delivered again.
FAIL = {
    Phase.PLAN: Action.FAIL_PLAN,
    Phase.EXECUTE: Action.FAIL_EXECUTE,
    Phase.ROUND: Action.FINISH_ROUND,
}
RETRY = {Phase.PLAN: Action.RETRY_PLAN, Phase.EXECUTE: Action.RETRY_EXECUTE}


def utc_iso(epoch: float | None = None) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``, as the seed's log entries carry."""
    # time.strftime, not datetime's: a third of the cost. The fraction is rounded to the
    # microsecond first, as datetime.fromtimestamp does, so the milliseconds are its own.
    fraction, whole = math.modf(time.time() if epoch is None else epoch)
    seconds, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    elif micros < 0:
        seconds, micros = seconds - 1, micros + 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds)) + f"{micros // 1000:03d}Z"


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (``utc_iso`` times), never negative; None without both."""
    if not start or not end:
        return None
    elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(elapsed.total_seconds(), 0.0)


# Control characters (C0, DEL, C1) and Unicode line breaks, escaped in text that people and
# payloads supply before it becomes part of a log line.
_CONTROLS = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
}
_CONTROLS |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def one_line(text: str, limit: int = 2000) -> str:
    """``text`` made safe for one log line: control characters escaped, length capped."""
    escaped = text.translate(_CONTROLS)
    if len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}… [{len(escaped) - limit} more characters]"


# The same, but for text shown as a block: its line breaks and tabs kept.
_BLOCK_CONTROLS = {c: v for c, v in _CONTROLS.items() if c not in (ord("\n"), ord("\t"))}


def block_text(text: str, limit: int) -> tuple[str, bool]:
    """``text`` made safe to show as a block (lines kept), cut to ``limit``; and if it was cut."""
    escaped = text.translate(_BLOCK_CONTROLS)
    return escaped[:limit], len(escaped) > limit


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


class LogEntry(BaseModel):
    """One stored log line; ``seq`` is its offset and the cursor of every reader."""

    seq: int
    timestamp: str
    stream: LogStream
    message: str
    attempt: int | None = None
    kind: EventKind | None = None
    status: TaskStatus | None = None
    raw: Any = None


class LogsPage(BaseModel):
    """The seed's ``GET /tasks/{id}/logs`` response."""

    task_id: str
    logs: list[LogEntry]
    offset: int
    limit: int
    total: int
    has_more: bool
    next_offset: int


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


class RoundItem(BaseModel):
    """A review round's feedback item as shown: a stranger's text, capped, never markup."""

    kind: str  # review, inline, comment (sources/feedback.py) or ci (sources/ci.py)
    author: str | None = None  # the comment's author; for ci, the failed check's name
    path: str | None = None
    line: int | None = None
    body: str = ""
    truncated: bool = False  # the body is longer than shown (the round had all of it)


class ReviewRound(BaseModel):
    """A finished review round: what it addressed and how it ended."""

    number: int
    kind: Literal["review", "ci"]  # ci: every item was a failing checks' report
    item_count: int
    items: list[RoundItem]  # the first ones, when there were many
    outcome: str  # as the log and the status comment say it
    finished_at: str | None = None  # none for rounds kept before it was recorded
    commit: str | None = None  # the commit it pushed
    test: CheckResult | None = None  # the policy's test after the agent, when configured
    error: str | None = None  # why it failed (redacted)


class TaskRounds(BaseModel):
    """A task's review rounds: how many ran of ``max_rounds``, each one, what waits."""

    ran: int = 0
    max_rounds: int = 0
    finished: list[ReviewRound] = Field(default_factory=list)
    running: list[RoundItem] = Field(default_factory=list)  # the round now running
    running_count: int = 0
    pending: list[RoundItem] = Field(default_factory=list)  # for the next round
    pending_count: int = 0


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


class ChangeStats(BaseModel):
    """The change requests of one repository, source and agent (all of them when null)."""

    repository: str | None = None
    source: str | None = None
    agent: str | None = None
    opened: int = 0
    merged: int = 0
    closed_unmerged: int = 0
    # Merged among the requests that ended (merged or closed); null while none ended.
    merge_rate: float | None = None
    median_time_to_merge_s: float | None = None
    rounds_per_pr: float | None = None
    ci_fixes_per_pr: float | None = None


class StatsResponse(BaseModel):
    """``GET /stats``: change requests per repository, source and agent, and in total."""

    total: ChangeStats
    groups: list[ChangeStats]

"""A task's statuses and phases, and the one table of which action may move it where."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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

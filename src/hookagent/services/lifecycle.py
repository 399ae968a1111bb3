"""Human decisions on a task: approve, reject, revise, cancel, retry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from hookagent.errors import ApprovalExpired, ConflictError
from hookagent.models import (
    RETRY,
    TRANSITIONS,
    Action,
    ActionResult,
    LogStream,
    Phase,
    Task,
    TaskStatus,
    one_line,
    seconds_between,
    utc_iso,
)
from hookagent.policy import Policies
from hookagent.redact import Redactor
from hookagent.secret_values import build_redactor
from hookagent.settings import Settings
from hookagent.store import NewLine, Store

ACTOR_MAX = 200
TEXT_MAX = 2000


class Lifecycle:
    """Applies a person's decision to a task, atomically, logged once in its status line.

    Names and texts people supply reach the log through :func:`one_line`: control characters
    are escaped and lengths capped, so nobody can print a forged ``[system]`` line.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        redactor: Redactor | None = None,
        policies: Policies | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._policies = policies or Policies.from_settings(settings)
        # Built from the settings when not given (~0.1 ms): people paste tokens into comments.
        self._redactor = redactor or build_redactor(settings)

    async def approve(
        self, task_id: str, *, actor: str, voter: str, comment: str | None = None
    ) -> ActionResult:
        """``pending_approval → approved`` and the execution job, in one step.

        When the repository's policy asks for ``approvals = N`` (N > 1), each distinct
        approver's vote is recorded, and only the vote that reaches N approves: the others
        are logged (``approved by lee (1 of 2)``) and leave the task waiting. Votes are
        counted under ``voter``, an identity the person cannot change (``slack:<user id>``,
        ``github:<user id>``, ``api:<token name>``); ``actor`` is the name shown, and the
        task's ``approver`` names each voter once.
        """
        task = await self._store.tasks.get(task_id)
        await self._refuse_expired(task)
        fields = {"approver": actor, "approval_comment": comment, "phase": Phase.EXECUTE}
        needed = self._policies.effective(task.repository).approvals
        if needed > 1:
            who, name = one_line(voter, ACTOR_MAX), one_line(actor, ACTOR_MAX)
            added, ballots = await self._store.tasks.vote(task_id, _ballot(who, name))
            names = _voter_names(ballots, who, name)
            tally = f"{len(names)} of {needed}"
            if len(names) < needed:
                # Not new when this voter's ballot under another name is already in.
                new = added and [_voter_of(b) for b in ballots].count(who) == 1
                what = "approved" if new else "approval already counted"
                await self.say(task_id, _said(what, actor, comment, note=tally))
                status = TaskStatus.PENDING_APPROVAL
                return ActionResult(task_id=task_id, status=status, previous=status)
            fields["approver"] = ", ".join(names.values())
            text = _said("approved", actor, comment, note=tally)
        else:
            text = _said("approved", actor, comment)
        return await self._apply(
            task_id, Action.APPROVE, text, fields=fields, enqueue=Phase.EXECUTE
        )

    async def reject(self, task_id: str, *, actor: str, reason: str | None = None) -> ActionResult:
        """``pending_approval → rejected``."""
        return await self._apply(task_id, Action.REJECT, _said("rejected", actor, reason))

    async def revise(self, task_id: str, *, actor: str, feedback: str) -> ActionResult:
        """Plan again with the reviewer's feedback; the earlier plan stays in the plan history."""
        if not feedback.strip():
            raise ConflictError("revise needs feedback saying what to change")
        text = _said("revision requested", actor, feedback)
        fields = {"feedback": feedback, "phase": Phase.PLAN}
        return await self._apply(task_id, Action.REVISE, text, fields=fields, enqueue=Phase.PLAN)

    async def cancel(self, task_id: str, *, actor: str, reason: str | None = None) -> ActionResult:
        """End the task wherever it is; its worker (on any machine) is told to stop the agent."""
        text = _said("cancelled", actor, reason, at=utc_iso())
        result = await self._apply(task_id, Action.CANCEL, text, fields={"error": text})
        # The transition already dropped the worker's lease token (its writes now fail);
        # the signal makes it stop the agent at once rather than at its next write.
        await self._store.cancels.announce(task_id, actor)
        return result

    async def retry(self, task_id: str, *, actor: str) -> ActionResult:
        """A new attempt of a failed or cancelled task, from the phase it stopped in."""
        task = await self._store.tasks.get(task_id)
        text = _said(f"retry of the {task.phase.value} phase requested", actor, None)
        return await self._apply(
            task_id, RETRY[task.phase], text, fields={"error": None}, enqueue=task.phase
        )

    async def end_change(
        self, task: Task, *, merged: bool, actor: str, label: str, at: float | None = None
    ) -> ActionResult:
        """``completed``/``revising`` → ``merged`` or ``closed``: the forge ended the request.

        Counted once, by the transition that succeeded: merges, their time to merge (from
        ``pr_opened_at``), and the follow-up rounds of every ended request.
        """
        ended = utc_iso(at)
        action = Action.MERGE if merged else Action.CLOSE
        text = _said(f"{label} {'merged' if merged else 'closed unmerged'}", actor, None)
        result = await self._apply(task.task_id, action, text, fields={"pr_ended_at": ended})
        await self._store.metrics.observe_change_end(
            merged=merged,
            seconds=seconds_between(task.pr_opened_at, ended),
            rounds=task.review_rounds,
        )
        return result

    async def _apply(
        self,
        task_id: str,
        action: Action,
        text: str,
        *,
        fields: Mapping[str, object] | None = None,
        enqueue: Phase | None = None,
    ) -> ActionResult:
        text = self._redactor.redact(text)  # a person may paste a token into a comment
        # The decision is logged once, by the transition: ``[system] status approved: <text>``.
        previous = await self._store.tasks.advance(
            task_id, action, reason=text, fields=fields, enqueue=enqueue
        )
        status = TRANSITIONS[action].to
        return ActionResult(task_id=task_id, status=status, previous=previous)

    async def _refuse_expired(self, task: Task) -> None:
        ttl = self._settings.approval_ttl
        if ttl is None or task.status is not TaskStatus.PENDING_APPROVAL:
            return
        waited = datetime.now(UTC) - datetime.fromisoformat(task.updated_at.replace("Z", "+00:00"))
        if waited.total_seconds() <= ttl:
            return
        text = f"approval expired after {ttl:.0f}s (HOOKAGENT_APPROVAL_TTL)"
        await self._apply(task.task_id, Action.EXPIRE, text, fields={"error": text})
        raise ApprovalExpired(f"task {task.task_id} is cancelled: {text}")

    async def refused(self, task_id: str, where: str, exc: ConflictError) -> None:
        """Log a refused decision (``<where> refused: <why>``), unless its cause logged it."""
        if not isinstance(exc, ApprovalExpired):  # the cancellation's status line says it
            await self.say(task_id, f"{where} refused: {exc.message}")

    async def say(self, task_id: str, text: str) -> None:
        """Write a ``[system]`` line to the task's log (unfenced: it comes from a person)."""
        text = one_line(self._redactor.redact(text))
        line = NewLine(utc_iso(), LogStream.SYSTEM.value, f"[system] {text}")
        await self._store.logs.append(task_id, [line])


def _ballot(voter: str, name: str) -> str:
    """A vote as stored: the voter, a tab, the name; counted per voter, shown by name.

    Both parts went through :func:`one_line`, which escapes tabs, so the first tab splits them.
    """
    return f"{voter}\t{name}"


def _voter_of(stored: str) -> str:
    """Who cast a stored :func:`_ballot` (the whole entry when it holds no name)."""
    return stored.split("\t", 1)[0]


def _voter_names(ballots: list[str], voter: str, name: str) -> dict[str, str]:
    """One name per distinct voter (by voter): ``voter`` as ``name``, the others as they voted.

    A voter renamed between two votes has two ballots; the first in sort order names them.
    """
    names: dict[str, str] = {}
    for stored in sorted(ballots):
        who, _, said = stored.partition("\t")
        names.setdefault(who, said or who)
    names[voter] = name
    return names


def _said(
    what: str, actor: str, text: str | None, *, at: str | None = None, note: str | None = None
) -> str:
    """``<what> by <actor>[ at <time>][ (<note>)][: <text>]``, the words made safe for one line."""
    said = f"{what} by {one_line(actor, ACTOR_MAX)}" + (f" at {at}" if at else "")
    said += f" ({note})" if note else ""
    return f"{said}: {one_line(text, TEXT_MAX)}" if text else said

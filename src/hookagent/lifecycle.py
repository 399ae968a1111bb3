"""Human decisions on a task: approve, reject, revise, cancel, retry."""

from __future__ import annotations

from datetime import UTC, datetime

from hookagent.errors import ConflictError
from hookagent.keys import Keys
from hookagent.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    ActionResult,
    LogStream,
    Phase,
    Task,
    TaskStatus,
    utc_iso,
)
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.logs import NewLine

OPEN_STATUSES = tuple(s for s in TaskStatus if s not in TERMINAL_STATUSES)


class Lifecycle:
    """Applies a person's decision to a task, atomically, with a ``[system]`` log line."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._keys = Keys(settings.key_prefix)

    async def approve(
        self, task_id: str, *, actor: str, comment: str | None = None
    ) -> ActionResult:
        """``pending_approval → approved`` and the execution job, in one step."""
        task = await self._store.tasks.get(task_id)
        await self._refuse_expired(task)
        previous = await self._store.tasks.advance(
            task_id,
            TaskStatus.APPROVED,
            allowed=(TaskStatus.PENDING_APPROVAL,),
            reason=f"approved by {actor}" + (f": {comment}" if comment else ""),
            fields={"approver": actor, "approval_comment": comment, "phase": Phase.EXECUTE},
            enqueue=(self._store.jobs.key, Phase.EXECUTE),
        )
        await self.say(task_id, f"approved by {actor}" + (f": {comment}" if comment else ""))
        return ActionResult(task_id=task_id, status=TaskStatus.APPROVED, previous=previous)

    async def reject(self, task_id: str, *, actor: str, reason: str | None = None) -> ActionResult:
        """``pending_approval → rejected``."""
        text = f"rejected by {actor}" + (f": {reason}" if reason else "")
        previous = await self._store.tasks.advance(
            task_id, TaskStatus.REJECTED, allowed=(TaskStatus.PENDING_APPROVAL,), reason=text
        )
        await self.say(task_id, text)
        return ActionResult(task_id=task_id, status=TaskStatus.REJECTED, previous=previous)

    async def revise(self, task_id: str, *, actor: str, feedback: str) -> ActionResult:
        """Plan again with the reviewer's feedback; the earlier plan stays in the plan history."""
        if not feedback.strip():
            raise ConflictError("revise needs feedback saying what to change")
        text = f"revision requested by {actor}: {feedback}"
        previous = await self._store.tasks.advance(
            task_id,
            TaskStatus.QUEUED,
            allowed=(TaskStatus.PENDING_APPROVAL,),
            reason=text,
            fields={"feedback": feedback, "phase": Phase.PLAN},
            enqueue=(self._store.jobs.key, Phase.PLAN),
        )
        await self.say(task_id, text)
        return ActionResult(task_id=task_id, status=TaskStatus.QUEUED, previous=previous)

    async def cancel(self, task_id: str, *, actor: str, reason: str | None = None) -> ActionResult:
        """End the task wherever it is; its worker (on any machine) is told to stop the agent."""
        text = f"cancelled by {actor} at {utc_iso()}" + (f": {reason}" if reason else "")
        previous = await self._store.tasks.advance(
            task_id,
            TaskStatus.CANCELLED,
            allowed=OPEN_STATUSES,
            reason=text,
            fields={"error": text},
        )
        await self.say(task_id, text)
        # The transition already dropped the worker's lease token (its writes now fail);
        # the message makes it stop the agent at once rather than at its next write.
        await self._store.redis.publish(self._keys.cancel_channel(task_id), actor)
        return ActionResult(task_id=task_id, status=TaskStatus.CANCELLED, previous=previous)

    async def retry(self, task_id: str, *, actor: str) -> ActionResult:
        """A new attempt of a failed or cancelled task, from the phase it stopped in."""
        task = await self._store.tasks.get(task_id)
        status = ACTIVE_STATUSES[task.phase][0]
        text = f"retry of the {task.phase.value} phase requested by {actor}"
        previous = await self._store.tasks.advance(
            task_id,
            status,
            allowed=(TaskStatus.FAILED, TaskStatus.CANCELLED),
            reason=text,
            fields={"error": None},
            enqueue=(self._store.jobs.key, task.phase),
        )
        await self.say(task_id, text)
        return ActionResult(task_id=task_id, status=status, previous=previous)

    async def _refuse_expired(self, task: Task) -> None:
        ttl = self._settings.approval_ttl
        if ttl is None or task.status is not TaskStatus.PENDING_APPROVAL:
            return
        waited = datetime.now(UTC) - datetime.fromisoformat(task.updated_at.replace("Z", "+00:00"))
        if waited.total_seconds() <= ttl:
            return
        text = f"approval expired after {ttl:.0f}s (HOOKAGENT_APPROVAL_TTL)"
        await self._store.tasks.advance(
            task.task_id,
            TaskStatus.CANCELLED,
            allowed=(TaskStatus.PENDING_APPROVAL,),
            reason=text,
            fields={"error": text},
        )
        await self.say(task.task_id, text)
        raise ConflictError(f"task {task.task_id} is cancelled: {text}")

    async def say(self, task_id: str, text: str) -> None:
        """Write a ``[system]`` line to the task's log (unfenced: it comes from a person)."""
        line = NewLine(utc_iso(), LogStream.SYSTEM.value, f"[system] {text}")
        await self._store.logs.append(task_id, [line])

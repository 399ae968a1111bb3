"""What happens to a parsed delivery: dedupe, then a new task or a command on an existing one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hookagent.errors import ConflictError, HookagentError, TaskNotFound
from hookagent.keys import Keys
from hookagent.lifecycle import Lifecycle
from hookagent.models import PHASE_QUEUES, TERMINAL_STATUSES, NewTask, Phase, new_task_id
from hookagent.settings import Settings
from hookagent.sources import Command, Verb
from hookagent.store import Store
from hookagent.workspace import validate_repo


class NotAnApprover(HookagentError):
    """A command from someone not listed in the source's approvers."""

    status_code = 403
    code = "not_an_approver"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The HTTP answer to a delivery."""

    status_code: int
    body: dict[str, Any] = field(default_factory=dict)


class Intake:
    """Turns deliveries into tasks or lifecycle actions, at most once per delivery."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._keys = Keys(settings.key_prefix)
        self._lifecycle = Lifecycle(store, settings)

    async def new_task(self, new: NewTask, *, delivery: str | None) -> Outcome:
        """Queue a task, unless this delivery or an open task for the same incident exists."""
        new.repository = validate_repo(new.repository, self._settings.allowed_repo_set)
        task_id = new_task_id()
        redis: Any = self._store.redis  # replies are str (decode_responses=True)
        ttl = self._settings.dedupe_ttl
        delivery_key = self._keys.delivery(new.source, delivery) if delivery else None
        if delivery_key and not await redis.set(delivery_key, task_id, nx=True, ex=ttl):
            return await self._duplicate(await redis.get(delivery_key), "delivery seen before")
        if new.external_id:
            ref = self._keys.ref(new.source, new.external_id)
            if not await redis.set(ref, task_id, nx=True, ex=self._settings.task_ttl):
                existing = await redis.get(ref)
                if existing and await self._is_open(existing):
                    if delivery_key:
                        await redis.set(delivery_key, existing, ex=ttl)
                    return await self._duplicate(existing, "an open task exists for it")
                await redis.set(ref, task_id, ex=self._settings.task_ttl)
        task = await self._store.tasks.create(
            new,
            queue=PHASE_QUEUES[Phase.PLAN],
            task_id=task_id,
            job=(self._store.jobs.key, Phase.PLAN),
        )
        return Outcome(202, {"task_id": task.task_id, "status": task.status.value})

    async def command(self, command: Command, *, delivery: str | None) -> Outcome:
        """Apply ``@hookagent <verb>`` (or a transition) to the task the source object maps to."""
        redis: Any = self._store.redis
        if delivery:
            key = self._keys.delivery(command.source, delivery)
            if not await redis.set(key, command.verb.value, nx=True, ex=self._settings.dedupe_ttl):
                return Outcome(200, {"status": "duplicate", "detail": "delivery seen before"})
        task_id = await redis.get(self._keys.ref(command.source, command.ref))
        if not task_id:
            raise TaskNotFound(f"no task for {command.source} {command.ref}")
        task = await self._store.tasks.get(task_id)
        if command.verb is Verb.STATUS:
            return Outcome(
                200, {"task_id": task_id, "status": task.status.value, "plan": task.plan}
            )
        where = f"{command.verb.value} from {command.source} by {command.actor}"
        approvers = self._settings.approvers(command.source)
        if not approvers & {name.lower() for name in command.actor_names}:
            await self._lifecycle.say(
                task_id, f"{where} refused: not in HOOKAGENT_{command.source.upper()}_APPROVERS"
            )
            raise NotAnApprover(f"{command.actor} may not {command.verb.value} tasks")
        try:
            result = await self._apply(task_id, command)
        except ConflictError as exc:
            await self._lifecycle.say(task_id, f"{where} refused: {exc.message}")
            raise
        return Outcome(200, result.model_dump(mode="json"))

    async def _apply(self, task_id: str, command: Command) -> Any:
        life, actor, text = self._lifecycle, f"{command.actor} ({command.source})", command.text
        if command.verb is Verb.APPROVE:
            return await life.approve(task_id, actor=actor, comment=text or None)
        if command.verb is Verb.REJECT:
            return await life.reject(task_id, actor=actor, reason=text or None)
        if command.verb is Verb.REVISE:
            return await life.revise(task_id, actor=actor, feedback=text)
        return await life.cancel(task_id, actor=actor, reason=text or None)

    async def _duplicate(self, task_id: str | None, why: str) -> Outcome:
        status = None
        if task_id:
            try:
                status = (await self._store.tasks.get(task_id)).status.value
            except TaskNotFound:
                status = None
        return Outcome(
            200, {"task_id": task_id, "status": status, "duplicate": True, "detail": why}
        )

    async def _is_open(self, task_id: str) -> bool:
        try:
            return (await self._store.tasks.get(task_id)).status not in TERMINAL_STATUSES
        except TaskNotFound:
            return False

"""Failing checks on a task's change request: kept for a CI fix round, offered, or noted.

A failure (sources/ci.py) counts from a signed delivery, for the head of a branch a task
pushed; the repository policy's ``fix_ci`` decides: ``auto`` keeps it as a round's feedback
item at once, ``ask`` keeps it as an offer (the worker posts one comment offering
``@hookagent fix-ci``), ``off`` notes it in the log. The latest failure is remembered for
that command in every mode. A CI
fix is a review round (store/reviews.py) whose item is the failing checks' report, read by
the worker (worker/cifix.py).
"""

from __future__ import annotations

import time
from datetime import datetime

from hookagent.errors import NotAnApprover, SignatureError, TaskNotFound
from hookagent.models import CHANGE_OPEN, Task, one_line
from hookagent.policy import Policies
from hookagent.services.lifecycle import Lifecycle
from hookagent.services.outcomes import Duplicate, Gathered, Outdated
from hookagent.settings import Settings
from hookagent.sources import ChecksFailed, Command
from hookagent.sources.reviews import OWN_BRANCH
from hookagent.sources.table import SOURCES
from hookagent.store import Store


class CiFixes:
    """Turns failed checks and ``@hookagent fix-ci`` into CI fix rounds."""

    def __init__(
        self, store: Store, settings: Settings, *, policies: Policies, lifecycle: Lifecycle
    ) -> None:
        self._store = store
        self._settings = settings
        self._policies = policies
        self._lifecycle = lifecycle

    async def checks_failed(
        self, failed: ChecksFailed, *, signed: bool
    ) -> Gathered | Duplicate | Outdated:
        """Checks failed on a task's branch: offer a fix, queue one, or note it (``fix_ci``).

        Only from a signed delivery. Kept once per head sha and check (its ``event_id``).
        """
        if not signed:
            known = SOURCES.get(failed.source)
            setting = known.secret_setting if known else "the source's webhook secret"
            raise SignatureError(
                f"a check's failure needs a signed delivery: set {setting} and give the "
                "webhook the same secret"
            )
        task = await self._branch_owner(failed)
        if task is None:
            return Outdated(None, f"no task pushed {one_line(failed.branch, 200)}")
        if task.status not in CHANGE_OPEN:
            return Outdated(task.task_id, f"task {task.task_id} is {task.status}")
        mode = self._policies.effective(task.repository).fix_ci
        what = f"checks failed on {failed.sha[:12]} ({one_line(failed.check, 200)})"
        # Whatever the mode, a person may still ask: ``@hookagent fix-ci`` fixes this one.
        await self._store.reviews.note_failure(task.task_id, failed.item())
        if mode == "off":
            await self._lifecycle.say(task.task_id, f"{what}: not acted on (fix_ci = off)")
            return Outdated(task.task_id, "fix_ci is off in the repository's policy")
        added = await self._store.reviews.add(
            task.task_id, failed.item() | {"offer": mode == "ask"},
            feedback_id=failed.event_id, now_ms=int(time.time() * 1000),
        )  # fmt: skip
        if not added.added:
            return Duplicate(None, None, "this failure was seen before")
        then = "offering @hookagent fix-ci" if mode == "ask" else "a CI fix is queued"
        await self._lifecycle.say(task.task_id, f"{what}: {then}")
        return Gathered(task.task_id, added.queued)

    async def fix(self, task: Task, command: Command) -> Gathered | Duplicate | Outdated:
        """``@hookagent fix-ci``: a round on the latest failure of the task's checks."""
        where = f"fix-ci from {command.source} by {one_line(command.actor, 200)}"
        policy = self._policies.effective(task.repository)
        if not policy.may_review(command.actor_names, self._settings.approvers(command.source)):
            await self._lifecycle.say(task.task_id, f"{where} refused: not an approver or reviewer")
            raise NotAnApprover(f"{one_line(command.actor, 200)} may not ask for CI fixes")
        created = int(datetime.fromisoformat(task.created_at).timestamp())
        if command.created_at is not None and int(command.created_at) < created:
            return Outdated(task.task_id, f"the comment was written before {task.task_id}")
        if task.status not in CHANGE_OPEN:
            return Outdated(task.task_id, f"task {task.task_id} is {task.status}")
        failure = (await self._store.reviews.ci_state(task.task_id)).failure
        if failure is None:
            await self._lifecycle.say(task.task_id, f"{where} ignored: no failed checks known")
            return Outdated(task.task_id, "no failed checks are known for this change")
        added = await self._store.reviews.add(
            task.task_id, failure | {"offer": False, "asked_by": command.actor},
            feedback_id=f"fix-ci:{failure.get('sha')}", now_ms=int(time.time() * 1000),
        )  # fmt: skip
        if not added.added:
            return Duplicate(None, None, "a CI fix of this failure was asked for before")
        await self._lifecycle.say(task.task_id, f"{where}: a CI fix is queued")
        return Gathered(task.task_id, added.queued)

    async def _branch_owner(self, failed: ChecksFailed) -> Task | None:
        """The task whose change request (else whose branch) the failed checks ran on."""
        task_id: str | None = None
        if failed.number is not None:
            ref = f"{failed.repository}!{failed.number}"
            task_id = await self._store.refs.task_for(failed.source, ref)
        if not task_id and OWN_BRANCH.match(failed.branch):
            task_id = failed.branch.partition("/")[2]
        if not task_id:
            return None
        try:
            task = await self._store.tasks.get(task_id)
        except TaskNotFound:
            return None
        if task.branch != failed.branch or task.forge != failed.source:
            return None
        return task if task.repository.lower() == failed.repository.lower() else None

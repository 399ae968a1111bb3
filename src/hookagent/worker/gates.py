"""The gates a claimed job passes before it runs: its review round, its agent's quota, a slot.

A module of its own because each gate has the same shape, apart from running a job: ask
Redis whether the job may run now and, when not, hand it back to the queue with a delay
(``JobQueue.defer``), so no worker waits on it and the wait is no failed delivery.
"""

from __future__ import annotations

import logging

from hookagent.errors import TaskNotFound
from hookagent.models import LogStream, utc_iso
from hookagent.settings import Settings
from hookagent.store import Job, NewLine, Store, StoreConnectionError, StoreTimeoutError
from hookagent.worker.phases import PhaseRunner

log = logging.getLogger(__name__)

# A job handed back for want of a repository slot is offered again after this long, at
# most: short enough to start soon after a slot frees, long enough not to spin on it.
DEFER_MAX_MS = 2000


class Gates:
    """Hands a claimed job back, deferred, while its round, its quota or its repository waits."""

    def __init__(
        self, *, store: Store, settings: Settings, phases: PhaseRunner, worker: str
    ) -> None:
        self._store = store
        self._queue = store.jobs
        self._settings = settings
        self._phases = phases
        self._worker = worker

    async def hold_round(self, job: Job) -> bool | None:
        """None: the review round runs now; else held: deferred (False) or done with (True).

        Deferred through the queue while review feedback still arrives (the debounce): no
        worker waits on it meanwhile, and the wait is no failed delivery.
        """
        wait = await self._phases.round_gate(job.task_id)
        if wait.run:
            return None
        if not wait.after_ms:
            return True
        after_ms = min(wait.after_ms, self._queue.lease_ms)
        await self._queue.defer(job, self._worker, after_ms=after_ms)
        return False

    async def quota_held(self, job: Job) -> bool:
        """Hand the job back, unclaimed, while its agent's model quota is out (all workers')."""
        agent = await self._phases.agents.name_of(job.task_id)
        if agent is None:
            return False  # the claim that follows skips the job
        quota = await self._phases.quota.held(job.task_id, agent)
        if quota is None:
            return False
        after_ms = int(quota.remaining() * 1000) + 1
        await self._queue.defer(job, self._worker, after_ms=after_ms)
        return True

    async def limited_repo(self, job: Job) -> str | None:
        """The task's repository when HOOKAGENT_MAX_RUNS_PER_REPO limits runs, else None."""
        if not self._settings.max_runs_per_repo:
            return None
        try:
            return (await self._store.tasks.get(job.task_id)).repository
        except TaskNotFound:
            return None  # the claim that follows skips the job

    async def take_slot(self, job: Job, repo: str, token: str) -> bool:
        """A run slot of ``repo``; else the job is handed back, and the task log says why once."""
        answer = await self._store.slots.take(repo, token, job.task_id)
        if answer.held:
            return True
        if answer.first_wait:
            runs = "run" if answer.running == 1 else "runs"
            text = (
                f"[system] waiting: {answer.running} {runs} of {repo} in progress "
                f"(HOOKAGENT_MAX_RUNS_PER_REPO={self._settings.max_runs_per_repo})"
            )
            line = NewLine(utc_iso(), LogStream.SYSTEM.value, text)
            await self._store.logs.append(job.task_id, [line])
        after_ms = min(self._queue.lease_ms // 5, DEFER_MAX_MS)
        await self._queue.defer(job, self._worker, after_ms=after_ms)
        return False

    async def renew_slot(self, job: Job, repo: str, token: str) -> bool:
        """Renew the job's slot of ``repo``; one that lapsed is taken again if there is room."""
        if await self._store.slots.renew(repo, token):
            return True
        return (await self._store.slots.take(repo, token, job.task_id)).held

    async def release_slot(self, repo: str, token: str) -> None:
        """Free the slot of ``repo``; a Redis error is logged (the slot lapses on its own)."""
        try:
            await self._store.slots.release(repo, token)
        except (StoreConnectionError, StoreTimeoutError) as exc:
            # Not lost for good: the slot lapses one lease after its last renewal.
            log.warning("worker %s: could not free the slot of %s: %r", self._worker, repo, exc)

"""The sweep between jobs: leftover workspaces and agent homes, caches past their bound.

A module of its own because it is housekeeping, no phase of any task: the worker loop runs
it between jobs, and a failure in it must never stop the worker from taking the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time

from hookagent.errors import TaskNotFound
from hookagent.models import TERMINAL_STATUSES
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.cache import Caches
from hookagent.worker.run import sweep_homes
from hookagent.worker.workspace import Workspaces

log = logging.getLogger(__name__)

# Leftover workspaces (a crash, a cancel, a failed task's keep window) are rare: a sweep
# every ten minutes keeps the disk tidy without a Redis read per directory per job.
SWEEP_EVERY_S = 600.0


class Sweeper:
    """Removes what ended tasks left on this host, at most once per ``SWEEP_EVERY_S``."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        workspaces: Workspaces,
        caches: Caches,
        worker: str,
    ) -> None:
        self._store = store
        self._settings = settings
        self._workspaces = workspaces
        self._caches = caches
        self._worker = worker
        self._next_sweep = 0.0

    async def sweep(self) -> None:
        """Remove workspaces of ended or vanished tasks; at most once per ``SWEEP_EVERY_S``."""
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + SWEEP_EVERY_S
        keep_s = self._settings.keep_failed_workspaces * 3600
        try:
            removed = await self._workspaces.sweep(self._is_live, keep_s)
            homes = await sweep_homes(self._settings, self._is_live)
        except Exception:
            # Housekeeping must never stop the worker from taking jobs; the next sweep retries.
            log.exception("worker %s: workspace sweep failed", self._worker)
            return
        if removed or homes:
            log.info(
                "worker %s: removed %d leftover workspaces, %d agent homes",
                self._worker,
                len(removed),
                homes,
            )
        try:
            evicted = await asyncio.to_thread(self._caches.evict)
        except OSError:
            log.exception("worker %s: cache eviction failed", self._worker)
            return
        if evicted:
            log.info("worker %s: HOOKAGENT_CACHE_MAX_GB: removed the caches of %s",
                     self._worker, ", ".join(evicted))  # fmt: skip

    async def _is_live(self, task_id: str) -> bool:
        try:
            task = await self._store.tasks.get(task_id)
        except TaskNotFound:
            return False
        return task.status not in TERMINAL_STATUSES

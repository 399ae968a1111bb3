"""The worker loop: claims jobs, holds their lease, stops them on cancel, hands them back.

What a job waits for before it runs (its review round, its agent's quota, a run slot of its
repository) is gates.py's. The loop also keeps its record in the worker registry fresh (a
heartbeat), for ``/readyz`` and ``/workers``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Coroutine
from typing import Any

from hookagent import __version__
from hookagent.agents import Agent
from hookagent.errors import (
    ConflictError,
    FencedOut,
    LeaseLost,
    QuotaParked,
    TaskCancelled,
    TaskNotFound,
)
from hookagent.models import FAIL, TERMINAL_STATUSES, LogStream, Phase, utc_iso
from hookagent.race import race, raise_if_cancelling
from hookagent.redact import Redactor
from hookagent.secret_values import build_redactor
from hookagent.settings import Settings
from hookagent.store import (
    Job,
    JobQueue,
    NewLine,
    Store,
    StoreConnectionError,
    StoreReplyError,
    StoreTimeoutError,
    WorkerInfo,
)
from hookagent.store.writer import LogWriter, recover_spills
from hookagent.worker.gates import Gates
from hookagent.worker.phases import PhaseRunner
from hookagent.worker.workspace import Workspaces

log = logging.getLogger(__name__)

BACKOFF_MAX_S = 5.0
# A change whose effects are still pending after this long lost its process: the heartbeat
# applies them (store/effects.py). Far above a change's normal few milliseconds.
SETTLE_AFTER_S = 30.0
# While Redis is away, a lease renewal is tried again this often: once it is back, the
# lease is renewed within this long, before another worker's reclaim finds it lapsed.
LEASE_RETRY_S = 0.5


def consumer_name() -> str:
    """A name unique to this worker loop, readable in XINFO: host, pid, random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    """One worker loop: one job at a time. Run several for concurrency."""

    def __init__(
        self, *, store: Store, settings: Settings, agent: Agent, redactor: Redactor | None = None
    ) -> None:
        self._store = store
        self._settings = settings
        self._queue: JobQueue = store.jobs
        self.name = consumer_name()
        # Every configured secret and known credential shape, read once per worker.
        self._redactor = build_redactor(settings) if redactor is None else redactor
        self._phases = PhaseRunner(
            store=store, settings=settings, agent=agent, worker=self.name, redactor=self._redactor
        )
        self._gates = Gates(store=store, settings=settings, phases=self._phases, worker=self.name)
        self.busy = False
        self._job: Job | None = None
        self._host = socket.gethostname()
        self._started_at = utc_iso()
        self._beat_lock = asyncio.Lock()

    async def run(self, stop: asyncio.Event) -> None:
        """Take jobs until ``stop`` is set, heartbeating meanwhile; deregister on the way out.

        The heartbeat is a timer task owned by this call: it starts with the loop, and the
        race cancels and awaits it when the loop ends, so none outlives ``run``.
        """
        try:
            await self._recover_spills()
            await race(self._take_jobs(stop), self._heartbeat())
        finally:
            try:
                await self._phases.workspaces.aclose()  # no spare left half made
            finally:
                await self._deregister()

    @property
    def workspaces(self) -> Workspaces:
        """The worker's workspaces: a benchmark awaits their background work."""
        return self._phases.workspaces

    async def _recover_spills(self) -> None:
        """Store what a worker killed during a Redis outage held on disk (store/spill.py)."""
        try:
            lines = await recover_spills(self._store.logs, self._settings.spill_dir)
        except Exception:
            # Left on disk for the next start: recovery must not keep the worker from working.
            log.exception("worker %s: recovering spill files failed", self.name)
            return
        if lines:
            log.warning("worker %s: recovered %d held log lines", self.name, lines)

    async def _take_jobs(self, stop: asyncio.Event) -> None:
        """Take jobs until ``stop`` is set; Redis outages are waited out with backoff.

        Nothing but ``stop`` (or a cancel from its owner) ends this loop: an error in one job
        is logged and the loop takes the next.
        """
        block_ms = max(100, self._queue.lease_ms // 2)
        backoff = 0.1
        while not stop.is_set():
            await self._phases.sweeper.sweep()  # between jobs, at most every 10 minutes
            try:
                job = await self._next_job(stop, block_ms)
                backoff = 0.1
            except (StoreConnectionError, StoreTimeoutError, OSError, StoreReplyError) as exc:
                # Unreachable, restarting, or the stream was deleted (NOGROUP): wait, retry;
                # ensure_group recreates what is missing.
                log.warning("worker %s: Redis error %r; retry in %.1fs", self.name, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            if job is None:
                continue
            try:
                await self.process(job)
            except Exception:
                # A bug must not take the worker down with it: the job stays pending, is
                # reclaimed after its lease and fails for good at the delivery cap. But an
                # error raised while the job was being cancelled must not eat the cancel.
                log.exception("worker %s: unexpected error on %s", self.name, job.task_id)
                raise_if_cancelling()

    async def _heartbeat(self) -> None:
        """Renew this worker's registry record every ``HOOKAGENT_HEARTBEAT_SECONDS``."""
        while True:
            await self._beat()
            await self._settle()
            raise_if_cancelling()
            await asyncio.sleep(self._settings.heartbeat_seconds)  # a timer, not a poll

    async def _settle(self) -> None:
        try:
            await self._store.tasks.settle_stale(older_than_s=SETTLE_AFTER_S)
        except (StoreConnectionError, StoreTimeoutError, OSError) as exc:
            # Redis away: one line, as for the heartbeat; the next beat retries.
            log.warning("worker %s: settling stale task changes failed: %r", self.name, exc)
        except Exception:
            # Housekeeping must not end the heartbeat; the next beat retries.
            log.exception("worker %s: settling stale task changes failed", self.name)

    async def _beat(self) -> None:
        # Serialised, so a beat from the timer cannot land after a newer one from a job's
        # start or end and show the worker idle while it is busy (or the reverse).
        async with self._beat_lock:
            job = self._job
            info = WorkerInfo(
                name=self.name,
                host=self._host,
                pid=os.getpid(),
                started_at=self._started_at,
                version=__version__,
                task_id=job.task_id if job is not None else None,
                phase=job.phase.value if job is not None else None,
            )
            try:
                await self._store.workers.beat(info)
            except (StoreConnectionError, StoreTimeoutError, OSError, StoreReplyError) as exc:
                # The job loop waits out the outage; the next beat re-registers the worker.
                log.warning("worker %s: heartbeat failed: %r", self.name, exc)

    async def _deregister(self) -> None:
        try:
            await self._store.workers.deregister(self.name)
        except (StoreConnectionError, StoreTimeoutError, OSError) as exc:
            # The record expires by itself after HOOKAGENT_READY_WORKER_AGE or so.
            log.warning("worker %s: could not deregister: %r", self.name, exc)

    async def _next_job(self, stop: asyncio.Event, block_ms: int) -> Job | None:
        await self._queue.ensure_group()
        # Stopping wins the race: a job delivered to us at that instant stays pending under
        # our name and is reclaimed by another worker once its lease lapses.
        which, job = await race(self._queue.claim(self.name, block_ms=block_ms), stop.wait())
        return job if which == 0 else None

    async def process(self, job: Job) -> None:
        """Run one job; ack it once the task reached a status, else leave it to a successor."""
        self.busy = True
        self._job = job
        await self._beat()  # the registry shows the job before its agent starts
        try:
            finished = await self._guarded(job)
        except asyncio.CancelledError:
            await self._hand_back(job)
            raise
        finally:
            self.busy = False
            self._job = None
        if finished:
            await self._queue.ack(job)
        await self._beat()

    async def _guarded(self, job: Job) -> bool:
        try:
            return await self._process(job)
        except TaskCancelled:
            log.info("worker %s: %s was cancelled; agent stopped", self.name, job.task_id)
            return True
        except LeaseLost as exc:
            log.warning("worker %s: gave up %s: %s", self.name, job.task_id, exc)
            return False
        except QuotaParked as exc:
            # The task keeps its status; its job comes back when the quota should be.
            await self._queue.defer(job, self.name, after_ms=int(exc.after_s * 1000))
            return False
        except FencedOut:
            # Fenced by a cancel (the API drops the lease) or by a successor: ack only the former.
            return await self._is_finished(job.task_id)
        except (StoreConnectionError, StoreTimeoutError) as exc:
            # Not acked: the lease lapses and a worker picks the job up once Redis is back.
            log.warning("worker %s: Redis lost during %s: %r", self.name, job.task_id, exc)
            return False

    async def _process(self, job: Job) -> bool:
        if job.deliveries > self._settings.max_deliveries:
            await self._give_up(job)
            return True
        if job.phase is Phase.ROUND:
            held = await self._gates.hold_round(job)
            if held is not None:
                return held
        if job.deliveries > 1:
            await self._end_predecessor(job.task_id)
        if await self._gates.quota_held(job):
            return False  # handed back until the agent's quota should be back
        token = f"{self.name}:{job.job_id}:{secrets.token_hex(4)}"
        repo = await self._gates.limited_repo(job)
        if repo is not None and not await self._gates.take_slot(job, repo, token):
            return False  # handed back: another worker, or this one, takes it later
        try:
            return await self._attempt(job, token, repo)
        finally:
            if repo is not None:
                await self._gates.release_slot(repo, token)

    async def _attempt(self, job: Job, token: str, repo: str | None) -> bool:
        # Read before the claim: its status entry is the attempt's first line.
        since = await self._store.metrics.log_seq(job.task_id)
        try:
            attempt = await self._store.tasks.claim(job.task_id, token=token, phase=job.phase)
        except (TaskNotFound, ConflictError) as exc:
            log.info("worker %s: skipping job for %s: %s", self.name, job.task_id, exc)
            return True
        started = time.monotonic()
        ran = False
        try:
            ran = await self._write_and_run(job, token, repo, attempt)
        finally:
            await self._record(job, since, time.monotonic() - started if ran else None)
        return True

    async def _write_and_run(self, job: Job, token: str, repo: str | None, attempt: int) -> bool:
        s = self._settings
        async with LogWriter(
            self._store.logs,
            job.task_id,
            index=self._store.search,
            token=token,
            attempt=attempt,
            batch_lines=s.log_batch_lines,
            flush_ms=s.log_flush_ms,
            line_max=s.log_line_max,
            raw_max=s.log_raw_max,
            redactor=self._redactor,
            hold_lines=s.log_hold_lines,
            spill_dir=s.spill_dir,
        ) as writer:
            work = self._phases.run(job, writer, token=token, attempt=attempt)
            await self._supervise(job, work, self._keep_lease(job, repo, token))
        return True

    async def _record(self, job: Job, since: int, seconds: float | None) -> None:
        """Count the attempt's log lines and, when its phase ran to an end, its duration."""
        try:
            await self._store.metrics.count_log_lines(job.task_id, since=since)
            if seconds is not None:
                await self._store.metrics.observe_phase(job.phase, seconds)
        except (StoreConnectionError, StoreTimeoutError, StoreReplyError) as exc:
            # Metrics are best effort: a lost count must not fail or hold up the job.
            log.warning(
                "worker %s: could not record metrics of %s: %r", self.name, job.task_id, exc
            )

    async def _supervise(
        self, job: Job, work: Coroutine[Any, Any, None], lease: Coroutine[Any, Any, None]
    ) -> None:
        """Run ``work`` while renewing the lease and listening for a cancel; stop it on either."""
        which, _ = await race(work, lease, self._store.cancels.wait(job.task_id))
        if which == 2:
            raise TaskCancelled(job.task_id)

    async def _keep_lease(self, job: Job, repo: str | None, token: str) -> None:
        """Renew the job's lease, and the repository slot with it, every third of a lease.

        While Redis is unreachable the run goes on (its lines are held by the log writer)
        and the renewal is tried again every ``LEASE_RETRY_S``: the lease is lost only when
        Redis, once back, says another worker holds the job. A slot that lapsed meanwhile
        is taken again if there is room, else the run stops (it would exceed the limit).
        """
        interval = self._queue.lease_ms / 3000
        wait = interval
        while True:
            # redis-py can swallow a cancel: one that meets a read's own timeout comes out as
            # a timeout, which the client's retry then answers. The loop looks for itself.
            raise_if_cancelling()
            await asyncio.sleep(wait)  # a heartbeat timer, not a poll
            try:
                owned = await self._queue.renew(job, self.name)
                slot = repo is None or await self._gates.renew_slot(job, repo, token)
            except (StoreConnectionError, StoreTimeoutError, OSError) as exc:
                raise_if_cancelling()
                log.warning("worker %s: lease of %s not renewed: %r", self.name, job.task_id, exc)
                wait = min(LEASE_RETRY_S, interval)
                continue
            if not owned:
                raise LeaseLost(f"job {job.job_id} was reclaimed by another worker")
            if not slot:
                raise LeaseLost(f"the run slot of {repo} lapsed")
            wait = interval

    async def _hand_back(self, job: Job) -> None:
        """On shutdown: say so in the task's log and make the job claimable at once."""
        try:
            token = await self._store.tasks.lease_token(job.task_id) or ""
            if token.startswith(f"{self.name}:"):
                text = f"[system] worker {self.name} stopping; job handed back to the queue"
                line = NewLine(utc_iso(), LogStream.SYSTEM.value, text)
                await self._store.logs.append(job.task_id, [line], token=token)
            await self._queue.release(job, self.name)
        except (
            StoreConnectionError,
            StoreTimeoutError,
            StoreReplyError,
            OSError,
            FencedOut,
            TaskNotFound,
        ) as exc:
            # It runs while a cancel is under way: an error here must not replace the cancel
            # (the job stays pending and is reclaimed once its lease lapses).
            log.warning("worker %s: could not hand back %s: %r", self.name, job.task_id, exc)

    async def _end_predecessor(self, task_id: str) -> None:
        """Kill what a dead worker on this host left of its agent (its process group)."""
        host, pgid = await self._store.tasks.agent_process(task_id)
        if host != socket.gethostname() or not pgid:
            return
        try:
            os.killpg(int(pgid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        text = f"[system] killed process group {pgid} left by the previous attempt"
        line = NewLine(utc_iso(), LogStream.SYSTEM.value, text)
        await self._store.logs.append(task_id, [line])

    async def _is_finished(self, task_id: str) -> bool:
        try:
            task = await self._store.tasks.get(task_id)
        except TaskNotFound:
            return True
        return task.status in TERMINAL_STATUSES

    async def _give_up(self, job: Job) -> None:
        reason = (
            f"worker lost: the job was delivered {job.deliveries} times without finishing "
            f"(HOOKAGENT_MAX_DELIVERIES={self._settings.max_deliveries})"
        )
        try:
            await self._store.tasks.advance(
                job.task_id, FAIL[job.phase], reason=reason, fields={"error": reason}
            )
        except (TaskNotFound, ConflictError) as exc:
            log.info("worker %s: not failing %s: %s", self.name, job.task_id, exc)
        if job.phase is Phase.ROUND:
            # The lost round's feedback goes with it; what came since gets a round of its own.
            await self._store.reviews.close(job.task_id, None)
            await self._store.reviews.next_round(job.task_id)

"""The worker: claims jobs, runs the agent on a clone, writes status and logs."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Coroutine
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hookagent.agents import Agent, AgentOutcome, AgentRun, run_process
from hookagent.agents.prompts import planning_prompt
from hookagent.agents.runner import OnLines
from hookagent.errors import AgentError, ConflictError, FencedOut, TaskNotFound, WorkspaceError
from hookagent.models import LogStream, Phase, TaskStatus, utc_iso
from hookagent.settings import Settings
from hookagent.store import Job, JobQueue, Store
from hookagent.store.logs import NewLine
from hookagent.store.writer import LogWriter
from hookagent.workspace import Workspaces

log = logging.getLogger(__name__)

ACTIVE = (TaskStatus.QUEUED, TaskStatus.DISCOVERING)
BACKOFF_MAX_S = 5.0


class LeaseLost(Exception):
    """Another worker reclaimed the job: this attempt must stop without touching the task."""


def consumer_name() -> str:
    """A name unique to this worker loop, readable in XINFO: host, pid, random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    """One worker loop: one job at a time. Run several for concurrency."""

    def __init__(self, *, store: Store, settings: Settings, agent: Agent) -> None:
        self._store = store
        self._settings = settings
        self._agent = agent
        self._queue: JobQueue = store.planning
        self._workspaces = Workspaces(
            settings.workspaces,
            url_template=settings.git_url_template,
            timeout=settings.clone_timeout,
        )
        self.name = consumer_name()

    async def run(self, stop: asyncio.Event) -> None:
        """Take jobs until ``stop`` is set; Redis outages are waited out with backoff."""
        block_ms = max(100, self._queue.lease_ms // 2)
        backoff = 0.1
        while not stop.is_set():
            try:
                await self._queue.ensure_group()
                job = await self._queue.claim(self.name, block_ms=block_ms)
                backoff = 0.1
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning(
                    "worker %s: Redis unreachable (%r); retrying in %.1fs", self.name, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            if job is not None:
                await self.process(job)

    async def process(self, job: Job) -> None:
        """Run one job; ack it once the task reached a status, else leave it to a successor."""
        try:
            finished = await self._process(job)
        except (LeaseLost, FencedOut) as exc:
            log.warning("worker %s: gave up %s: %s", self.name, job.task_id, exc)
            return
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # Not acked: the lease lapses and a worker picks the job up once Redis is back.
            log.warning("worker %s: Redis lost during %s: %r", self.name, job.task_id, exc)
            return
        if finished:
            await self._queue.ack(job)

    async def _process(self, job: Job) -> bool:
        tasks = self._store.tasks
        if job.deliveries > self._settings.max_deliveries:
            await self._give_up(job)
            return True
        token = f"{self.name}:{job.job_id}:{secrets.token_hex(4)}"
        try:
            attempt = await tasks.claim(
                job.task_id, token=token, status=TaskStatus.DISCOVERING, allowed=ACTIVE
            )
        except (TaskNotFound, ConflictError) as exc:
            log.info("worker %s: skipping job for %s: %s", self.name, job.task_id, exc)
            return True
        await self._with_lease(job, self._plan(job, token, attempt))
        return True

    async def _with_lease(self, job: Job, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` while renewing the job's lease; stop it if the lease is lost."""
        runner = asyncio.create_task(work)
        keeper = asyncio.create_task(self._keep_lease(job))
        try:
            await asyncio.wait({runner, keeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (runner, keeper):
                task.cancel()
            await asyncio.gather(runner, keeper, return_exceptions=True)
        if not keeper.cancelled() and (lost := keeper.exception()) is not None:
            raise lost
        runner.result()

    async def _keep_lease(self, job: Job) -> None:
        interval = self._queue.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)  # a heartbeat timer, not a poll
            if not await self._queue.renew(job, self.name):
                raise LeaseLost(f"job {job.job_id} was reclaimed by another worker")

    async def _plan(self, job: Job, token: str, attempt: int) -> None:
        task = await self._store.tasks.get(job.task_id)
        s = self._settings
        async with LogWriter(
            self._store.logs,
            task.task_id,
            token=token,
            attempt=attempt,
            batch_lines=s.log_batch_lines,
            flush_ms=s.log_flush_ms,
            line_max=s.log_line_max,
            raw_max=s.log_raw_max,
        ) as writer:
            await writer.system(
                f"attempt {attempt} (delivery {job.deliveries}): planning with {self._agent.name} "
                f"on worker {self.name}"
            )
            try:
                outcome = await self._run_agent(
                    task.task_id,
                    task.repository,
                    writer,
                    prompt=planning_prompt(
                        repository=task.repository,
                        source=task.source,
                        title=task.title,
                        context=task.prompt,
                    ),
                )
            except (AgentError, WorkspaceError) as exc:
                outcome = AgentOutcome(ok=False, error=exc.message)
            await self._conclude(task.task_id, token, writer, outcome)

    async def _run_agent(
        self, task_id: str, repo: str, writer: LogWriter, *, prompt: bytes
    ) -> AgentOutcome:
        path = await self._workspaces.clone(task_id, repo)
        await writer.system(f"cloned {repo} into workspace {path.name}")
        argv = self._agent.argv(Phase.PLAN)
        await writer.system(f"running {' '.join(argv)}")
        run = self._agent.start()
        result = await run_process(
            argv,
            stdin=prompt,
            cwd=path,
            on_lines=line_sink(run, writer),
            timeout=self._settings.planning_timeout,
            kill_grace=self._settings.kill_grace,
        )
        outcome = run.finish(result.exit_code)
        if result.timed_out:
            outcome.ok = False
            outcome.error = f"agent {result.describe} (HOOKAGENT_PLANNING_TIMEOUT)"
        elif not outcome.ok and outcome.error is None:
            outcome.error = f"agent failed: {result.describe}"
        await writer.system(f"agent exited: {result.describe} after {result.duration_s:.1f}s")
        return outcome

    async def _conclude(
        self, task_id: str, token: str, writer: LogWriter, outcome: AgentOutcome
    ) -> None:
        fields: dict[str, object] = {"agent": self._agent.name, **outcome.stats}
        if outcome.ok and not (outcome.plan or "").strip():
            outcome.ok, outcome.error = False, "agent finished without a plan"
        if outcome.ok:
            await writer.system("plan ready; waiting for approval")
            await writer.flush()
            fields |= {"plan": outcome.plan, "result": outcome.result, "error": None}
            await self._store.tasks.advance(
                task_id, TaskStatus.PENDING_APPROVAL, token=token, allowed=ACTIVE, fields=fields
            )
            return
        await writer.system(f"failed: {outcome.error}")
        await writer.flush()
        fields |= {"error": outcome.error, "plan": outcome.plan, "result": outcome.result}
        await self._store.tasks.advance(
            task_id,
            TaskStatus.FAILED,
            token=token,
            allowed=ACTIVE,
            reason=outcome.error,
            fields=fields,
        )

    async def _give_up(self, job: Job) -> None:
        reason = (
            f"worker lost: the job was delivered {job.deliveries} times without finishing "
            f"(HOOKAGENT_MAX_DELIVERIES={self._settings.max_deliveries})"
        )
        try:
            await self._store.tasks.advance(
                job.task_id,
                TaskStatus.FAILED,
                allowed=ACTIVE,
                reason=reason,
                fields={"error": reason},
            )
        except (TaskNotFound, ConflictError) as exc:
            log.info("worker %s: not failing %s: %s", self.name, job.task_id, exc)
            return
        line = NewLine(utc_iso(), LogStream.SYSTEM.value, f"[system] failed: {reason}")
        await self._store.logs.append(job.task_id, [line])


def line_sink(run: AgentRun, writer: LogWriter) -> OnLines:
    """Feed agent output through the adapter into the log writer."""

    async def sink(stream: LogStream, lines: list[str]) -> None:
        ts = utc_iso()  # one clock read per chunk: its lines arrived together
        for line in lines:
            for out in run.parse(stream, line):
                writer.add(out.stream, out.text, kind=out.kind or "", raw=out.raw, ts=ts)
        await writer.wait_room()

    return sink

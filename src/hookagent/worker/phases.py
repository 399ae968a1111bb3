"""What a worker does in each phase: plan (read-only) and execute (edit, then publish)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hookagent.agents import Agent, AgentOutcome, build_agent
from hookagent.agents.prompts import execution_prompt, planning_prompt
from hookagent.errors import AgentError, PullRequestError, TaskNotFound, WorkspaceError
from hookagent.models import FAIL, TERMINAL_STATUSES, Action, Phase, Task
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import Job, Store
from hookagent.store.writer import LogWriter
from hookagent.worker.publish import Publisher
from hookagent.worker.run import AgentSession
from hookagent.worker.workspace import Workspaces

log = logging.getLogger(__name__)

# Leftover workspaces (a crash, a cancel, a failed task's keep window) are rare: a sweep
# every ten minutes keeps the disk tidy without a Redis read per directory per job.
SWEEP_EVERY_S = 600.0


class PhaseRunner:
    """Runs one claimed job's phase and records its outcome (fenced by the attempt token)."""

    def __init__(
        self, *, store: Store, settings: Settings, agent: Agent, worker: str, redactor: Redactor
    ) -> None:
        self._store = store
        self._redactor = redactor
        self._settings = settings
        self._agent = agent
        self._others: dict[str, Agent] = {}
        self._worker = worker
        self._workspaces = Workspaces.from_settings(settings)
        self._next_sweep = 0.0
        self._session = AgentSession(store=store, settings=settings, redactor=redactor)
        self._publisher = Publisher(
            store=store, settings=settings, workspaces=self._workspaces, redactor=redactor
        )

    async def run(self, job: Job, writer: LogWriter, *, token: str, attempt: int) -> None:
        """The job's phase, start to recorded outcome."""
        task = await self._store.tasks.get(job.task_id)
        agent = self._agent_for(task)
        verb = "planning" if job.phase is Phase.PLAN else "executing the approved plan"
        await writer.system(
            f"attempt {attempt} (delivery {job.deliveries}): {verb} with {agent.name} "
            f"on worker {self._worker}"
        )
        if job.phase is Phase.EXECUTE:
            await self._execute(agent, task, writer, token)
        else:
            await self._plan(agent, task, writer, token)

    def _agent_for(self, task: Task) -> Agent:
        """The task's own agent when it names one (``?agent=`` on the webhook), else the default."""
        name = task.agent or self._agent.name
        if name == self._agent.name:
            return self._agent
        if name not in self._others:
            self._others[name] = build_agent(self._settings.model_copy(update={"agent": name}))
        return self._others[name]

    async def _plan(self, agent: Agent, task: Task, writer: LogWriter, token: str) -> None:
        prompt = planning_prompt(
            repository=task.repository,
            source=task.source,
            title=task.title,
            context=task.prompt,
            previous_plan=task.plan,
            feedback=task.feedback,
        )
        try:
            path = await self._clone(task, writer)
            outcome = await self._session.run(agent, path, Phase.PLAN, prompt, writer)
            await self._add_cost(outcome)
        except (AgentError, WorkspaceError) as exc:
            outcome = AgentOutcome(ok=False, error=exc.message)
        if outcome.ok and not (outcome.plan or "").strip():
            outcome.ok, outcome.error = False, "agent finished without a plan"
        fields: dict[str, Any] = {"agent": agent.name, **outcome.stats}
        if not outcome.ok:
            await self._fail(task, writer, token, outcome, fields)
            return
        # Execution clones afresh, so nothing needs this clone while the plan waits.
        await self._workspaces.remove(task.task_id)
        await self._store.tasks.add_plan(task.task_id, str(outcome.plan))
        await writer.system("plan ready; waiting for approval")
        await writer.flush()
        fields |= {"plan": outcome.plan, "result": outcome.result, "error": None, "feedback": None}
        await self._store.tasks.advance(task.task_id, Action.PLAN_READY, token=token, fields=fields)

    async def _execute(self, agent: Agent, task: Task, writer: LogWriter, token: str) -> None:
        branch = f"hookagent/{task.task_id}"
        prompt = execution_prompt(
            repository=task.repository,
            source=task.source,
            title=task.title,
            context=task.prompt,
            plan=task.plan or "",
            comment=task.approval_comment,
        )
        fields: dict[str, Any] = {"agent": agent.name, "branch": branch}
        try:
            path = await self._clone(task, writer)
            base = await self._workspaces.start_branch(path, branch)
            outcome = await self._session.run(agent, path, Phase.EXECUTE, prompt, writer)
            await self._add_cost(outcome)
            fields |= outcome.stats
            if outcome.ok:
                fields |= await self._publisher.publish(task, path, branch, base, writer)
        except (AgentError, WorkspaceError, PullRequestError) as exc:
            outcome = AgentOutcome(ok=False, error=exc.message)
        if not outcome.ok:
            await self._fail(task, writer, token, outcome, fields)
            return
        # Removed before the status changes: a task that reads as ended has no clone left.
        await self._workspaces.remove(task.task_id)
        await writer.system(f"completed: {fields.get('result')}")
        await writer.flush()
        await self._store.tasks.advance(
            task.task_id, Action.COMPLETE, token=token, fields=fields | {"error": None}
        )

    async def _add_cost(self, outcome: AgentOutcome) -> None:
        """Add what the agent reported spending to ``hookagent_cost_usd_total``."""
        cost = outcome.stats.get("total_cost_usd")
        if isinstance(cost, int | float) and cost > 0:
            await self._store.metrics.add_cost(float(cost))

    async def _clone(self, task: Task, writer: LogWriter) -> Path:
        path = await self._workspaces.clone(task.task_id, task.repository)
        await writer.system(f"cloned {task.repository} into workspace {path.name}")
        return path

    async def _fail(
        self,
        task: Task,
        writer: LogWriter,
        token: str,
        outcome: AgentOutcome,
        fields: dict[str, Any],
    ) -> None:
        await writer.flush()  # the status entry that follows carries the reason
        if outcome.error:
            outcome.error = self._redactor.redact(outcome.error)  # git errors quote URLs
        fields |= {"error": outcome.error, "result": outcome.result}
        if outcome.plan and task.phase is Phase.PLAN:
            fields["plan"] = outcome.plan
        if self._settings.keep_failed_workspaces > 0:
            self._workspaces.keep(task.task_id)  # for debugging; the sweeper removes it later
        else:
            await self._workspaces.remove(task.task_id)
        await self._store.tasks.advance(
            task.task_id, FAIL[task.phase], token=token, reason=outcome.error, fields=fields
        )

    async def sweep_workspaces(self) -> None:
        """Remove workspaces of ended or vanished tasks; at most once per ``SWEEP_EVERY_S``."""
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + SWEEP_EVERY_S
        keep_s = self._settings.keep_failed_workspaces * 3600
        try:
            removed = await self._workspaces.sweep(self._is_live, keep_s)
        except Exception:
            # Housekeeping must never stop the worker from taking jobs; the next sweep retries.
            log.exception("worker %s: workspace sweep failed", self._worker)
            return
        if removed:
            log.info("worker %s: removed %d leftover workspaces", self._worker, len(removed))

    async def _is_live(self, task_id: str) -> bool:
        try:
            task = await self._store.tasks.get(task_id)
        except TaskNotFound:
            return False
        return task.status not in TERMINAL_STATUSES

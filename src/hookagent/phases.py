"""What a worker does in each phase: plan (read-only) and execute (edit, commit, push, PR)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

from hookagent.agents import Agent, AgentOutcome, AgentRun, build_agent, run_process
from hookagent.agents.prompts import execution_prompt, planning_prompt
from hookagent.agents.runner import OnLines
from hookagent.errors import AgentError, WorkspaceError
from hookagent.github import PullRequestError, open_pull_request
from hookagent.keys import Keys
from hookagent.models import ACTIVE_STATUSES, LogStream, Phase, Task, TaskStatus, utc_iso
from hookagent.redact import RedactingStream, Redactor
from hookagent.secret_values import build_redactor
from hookagent.settings import Settings
from hookagent.store import Job, Store
from hookagent.store.writer import LogWriter
from hookagent.workspace import Workspaces

PROGRESS_EVERY_S = 1.0


class Reporter:
    """Saves a run's progress (adapter counters plus phase and timing) at most once a second."""

    def __init__(
        self, store: Store, task_id: str, phase: Phase, run: AgentRun, clock: list[float]
    ) -> None:
        self._store = store
        self._task_id = task_id
        self._phase = phase
        self._run = run
        self._clock = clock
        self._started = time.monotonic()
        self._started_wall = time.time()
        self._saved: dict[str, Any] | None = None

    async def every(self, interval: float) -> None:
        """Save whenever something changed, on a timer."""
        while True:
            await asyncio.sleep(interval)
            await self.save()

    async def save(self) -> None:
        """Write the progress document if it changed since the last write."""
        snapshot = self._run.progress.snapshot()
        if snapshot == self._saved:
            return
        self._saved = snapshot
        last_output = self._started_wall + (self._clock[0] - self._started)
        document = {
            "phase": self._phase.value,
            "elapsed_s": round(time.monotonic() - self._started, 1),
            "last_output_at": utc_iso(last_output),
            **snapshot,
        }
        await self._store.tasks.save_progress(self._task_id, document)


class Stalled(Exception):
    """The agent printed nothing for longer than ``HOOKAGENT_STALL_KILL``."""


def line_sink(
    run: AgentRun,
    writer: LogWriter,
    clock: list[float] | None = None,
    *,
    redactor: Redactor | None = None,
) -> OnLines:
    """Feed agent output, redacted, through the adapter into the log writer (note when)."""
    redacting: dict[LogStream, RedactingStream] = {}

    async def sink(stream: LogStream, lines: list[str]) -> None:
        ts = utc_iso()  # one clock read per chunk: its lines arrived together
        run.progress.lines += len(lines)
        if clock is not None:
            clock[0] = time.monotonic()
        if redactor is not None:
            # Before the adapter: the message, raw event, search terms, plan and progress
            # are all made from these lines. One state per stream: a PEM block on stdout
            # must not swallow stderr.
            if stream not in redacting:
                redacting[stream] = redactor.for_run()
            lines = redacting[stream].redact_lines(lines)
        for line in lines:
            for out in run.parse(stream, line):
                writer.add(out.stream, out.text, kind=out.kind or "", raw=out.raw, ts=ts)
        await writer.wait_room()

    return sink


class PhaseRunner:
    """Runs one claimed job's phase and records its outcome (fenced by the attempt token)."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        agent: Agent,
        worker: str,
        redactor: Redactor | None = None,
    ) -> None:
        self._store = store
        self.redactor = build_redactor(settings) if redactor is None else redactor
        self._settings = settings
        self._agent = agent
        self._others: dict[str, Agent] = {}
        self._worker = worker
        self._keys = Keys(settings.key_prefix)
        self._workspaces = Workspaces(
            settings.workspaces,
            url_template=settings.git_url_template,
            timeout=settings.clone_timeout,
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
            outcome = await self._run_agent(agent, path, Phase.PLAN, prompt, writer)
        except (AgentError, WorkspaceError) as exc:
            outcome = AgentOutcome(ok=False, error=exc.message)
        if outcome.ok and not (outcome.plan or "").strip():
            outcome.ok, outcome.error = False, "agent finished without a plan"
        fields: dict[str, Any] = {"agent": agent.name, **outcome.stats}
        if not outcome.ok:
            await self._fail(task, writer, token, outcome, fields)
            return
        await self._store.tasks.add_plan(task.task_id, str(outcome.plan))
        await writer.system("plan ready; waiting for approval")
        await writer.flush()
        fields |= {"plan": outcome.plan, "result": outcome.result, "error": None, "feedback": None}
        await self._store.tasks.advance(
            task.task_id,
            TaskStatus.PENDING_APPROVAL,
            token=token,
            allowed=ACTIVE_STATUSES[Phase.PLAN],
            fields=fields,
        )

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
            outcome = await self._run_agent(agent, path, Phase.EXECUTE, prompt, writer)
            fields |= outcome.stats
            if outcome.ok:
                fields |= await self._publish(task, path, branch, base, writer)
        except (AgentError, WorkspaceError, PullRequestError) as exc:
            outcome = AgentOutcome(ok=False, error=exc.message)
        if not outcome.ok:
            await self._fail(task, writer, token, outcome, fields)
            return
        await writer.system(f"completed: {fields.get('result')}")
        await writer.flush()
        await self._store.tasks.advance(
            task.task_id,
            TaskStatus.COMPLETED,
            token=token,
            allowed=ACTIVE_STATUSES[Phase.EXECUTE],
            fields=fields | {"error": None},
        )

    async def _publish(
        self, task: Task, path: Path, branch: str, base: str, writer: LogWriter
    ) -> dict[str, Any]:
        """Commit, push and open the pull request; the task fields that record it."""
        s = self._settings
        sha = await self._workspaces.commit_all(
            path,
            f"{task.title}\n\nhookagent task {task.task_id}",
            name=s.git_author_name,
            email=s.git_author_email,
        )
        if sha is None:
            await writer.system("the agent changed nothing; no commit, no pull request")
            return {"result": "no changes", "branch": None}
        await writer.system(f"committed {sha[:12]} on {branch}")
        try:
            await self._workspaces.push(path, branch)
        except WorkspaceError as exc:
            raise WorkspaceError(f"push of {branch} rejected: {exc.message}") from None
        await writer.system(f"pushed {branch}")
        fields: dict[str, Any] = {"commit": sha, "result": f"branch {branch} pushed"}
        if s.github_token is None:
            await writer.system("no HOOKAGENT_GITHUB_TOKEN: branch pushed, no pull request opened")
            return fields
        pull = await open_pull_request(
            api_url=s.github_api_url,
            token=s.github_token.get_secret_value(),
            repo=task.repository,
            head=branch,
            base=base,
            title=f"hookagent: {task.title}"[:250],
            body=self._pr_body(task),
        )
        await self._store.redis.set(
            self._keys.ref("github", f"{task.repository}#{pull.number}"),
            task.task_id,
            ex=s.task_ttl,
        )
        await writer.system(f"opened pull request #{pull.number}: {pull.url}")
        return fields | {"pr_url": pull.url, "pr_number": pull.number, "result": pull.url}

    def _pr_body(self, task: Task) -> str:
        cost = f"${task.total_cost_usd:.4f}" if task.total_cost_usd is not None else "n/a"
        link = f"{self._settings.public_url.rstrip('/')}/tasks/{task.task_id}"
        source = f"[{task.source}]({task.url})" if task.url else task.source
        return self.redactor.redact(
            f"Opened by hookagent for task [{task.task_id}]({link}) from {source}.\n\n"
            f"## Plan\n\n{task.plan or '(none)'}\n\n"
            f"Approved by {task.approver or 'unknown'}. Planning cost: {cost}.\n"
        )

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
            outcome.error = self.redactor.redact(outcome.error)  # git errors quote URLs
        fields |= {"error": outcome.error, "result": outcome.result}
        if outcome.plan and task.phase is Phase.PLAN:
            fields["plan"] = outcome.plan
        await self._store.tasks.advance(
            task.task_id,
            TaskStatus.FAILED,
            token=token,
            allowed=ACTIVE_STATUSES[task.phase],
            reason=outcome.error,
            fields=fields,
        )

    async def _run_agent(
        self, agent: Agent, path: Path, phase: Phase, prompt: bytes, writer: LogWriter
    ) -> AgentOutcome:
        s = self._settings
        timeout, knob = (
            (s.planning_timeout, "HOOKAGENT_PLANNING_TIMEOUT")
            if phase is Phase.PLAN
            else (s.execution_timeout, "HOOKAGENT_EXECUTION_TIMEOUT")
        )
        argv = agent.argv(phase)
        await writer.system(f"running {' '.join(argv)}")

        async def remember(pgid: int) -> None:
            # So that a successor on this host can end what a killed worker left running.
            fields = {"agent_host": socket.gethostname(), "agent_pgid": str(pgid)}
            await self._store.tasks.set_fenced(writer.task_id, writer.token, fields)

        run = agent.start()
        clock = [time.monotonic()]
        running = asyncio.create_task(
            run_process(
                argv,
                stdin=prompt,
                cwd=path,
                on_lines=line_sink(run, writer, clock, redactor=self.redactor),
                timeout=timeout,
                kill_grace=s.kill_grace,
                on_start=remember,
            )
        )
        watchdog = asyncio.create_task(self._watch_stall(clock, writer))
        report = Reporter(self._store, writer.task_id, phase, run, clock)
        reporting = asyncio.create_task(report.every(PROGRESS_EVERY_S))
        try:
            await asyncio.wait({running, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watchdog.cancel()
            reporting.cancel()
            if not running.done():
                running.cancel()  # the runner kills the agent's process group
            await asyncio.gather(running, watchdog, reporting, return_exceptions=True)
        await report.save()
        if not watchdog.cancelled() and isinstance(watchdog.exception(), Stalled):
            quiet = f"no output for {s.stall_kill:.0f}s (HOOKAGENT_STALL_KILL)"
            await writer.system(f"agent stopped: {quiet}")
            return AgentOutcome(ok=False, error=f"stalled: {quiet}")
        result = running.result()
        outcome = run.finish(result.exit_code)
        if result.timed_out:
            outcome.ok = False
            outcome.error = f"agent {result.describe} ({knob})"
        elif not outcome.ok and outcome.error is None:
            outcome.error = f"agent failed: {result.describe}"
        await writer.system(f"agent exited: {result.describe} after {result.duration_s:.1f}s")
        return outcome

    async def _watch_stall(self, clock: list[float], writer: LogWriter) -> None:
        """Warn once per silence past the stall timeout; raise Stalled past the kill limit."""
        warn, kill = self._settings.stall_timeout, self._settings.stall_kill
        warned_for = -1.0
        while True:
            last = clock[0]
            quiet = time.monotonic() - last
            if kill is not None and quiet >= kill:
                raise Stalled
            if quiet >= warn and warned_for != last:
                warned_for = last
                await writer.system(f"warning: no output from the agent for {quiet:.0f}s")
            next_warn = warn - quiet if warned_for != last else float("inf")
            next_kill = kill - quiet if kill is not None else float("inf")
            wait = min(next_warn, next_kill, warn)
            await asyncio.sleep(max(wait, 0.05))  # a timer to the next deadline, not a poll

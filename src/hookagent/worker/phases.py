"""What a worker does in each phase: plan (read-only) and execute (edit, then publish).

One object runs every phase because they share what a run goes through: the workspaces,
the agent session, the quota gate and the policies. What is asked before or between runs
lives beside it: which agent (agentchoice.py), the gates (gates.py), the sweep (sweeper.py),
and what the agent's change must pass before it is committed or pushed (vetting.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hookagent.agents import Agent, AgentOutcome
from hookagent.agents.base import RESUME_PROMPT
from hookagent.briefing.prompts import execution_prompt, planning_prompt
from hookagent.errors import AgentError, PolicyViolation, PullRequestError, WorkspaceError
from hookagent.models import FAIL, Action, LogStream, Phase, Task, TaskKind
from hookagent.policy import Facts, Policies, Policy, plan_files
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import Job, Store
from hookagent.store.writer import LogWriter
from hookagent.worker.agentchoice import AgentChoice
from hookagent.worker.cache import Caches
from hookagent.worker.discussion import Threads
from hookagent.worker.publish import Publisher
from hookagent.worker.quota import QuotaGate
from hookagent.worker.review import Reviewed, ReviewRun
from hookagent.worker.rounds import Rounds, Wait
from hookagent.worker.run import AgentSession
from hookagent.worker.setup import Workbench, checkout_setup, operator_instructions
from hookagent.worker.sweeper import Sweeper
from hookagent.worker.turns import Run, Turns
from hookagent.worker.vetting import describe_change, recheck_auto_approval, vet_change
from hookagent.worker.workspace import Workspaces


class PhaseRunner:
    """Runs one claimed job's phase and records its outcome (fenced by the attempt token)."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        agent: Agent,
        worker: str,
        redactor: Redactor,
        policies: Policies | None = None,
    ) -> None:
        self._store = store
        self._policies = policies or Policies.from_settings(settings)
        self._redactor = redactor
        self._settings = settings
        self._worker = worker
        self._workspaces = Workspaces.from_settings(settings)
        self.agents = AgentChoice(
            store=store, settings=settings, agent=agent, redactor=redactor, policies=self._policies
        )
        self._threads = Threads(settings)
        self._session = AgentSession(store=store, settings=settings, redactor=redactor)
        self.quota = QuotaGate(store=store, settings=settings, workspaces=self._workspaces)
        caches = Caches.from_settings(settings)
        self._workbench = Workbench(settings=settings, caches=caches, redactor=redactor)
        self.sweeper = Sweeper(
            store=store,
            settings=settings,
            workspaces=self._workspaces,
            caches=caches,
            worker=worker,
        )
        self._publisher = Publisher(
            store=store, settings=settings, workspaces=self._workspaces, redactor=redactor
        )
        self._reviews = ReviewRun(
            settings=settings, workspaces=self._workspaces, session=self._session, redactor=redactor
        )
        self._turns = Turns(
            store=store,
            settings=settings,
            session=self._session,
            workbench=self._workbench,
            workspaces=self._workspaces,
            redactor=redactor,
        )
        self._rounds = Rounds(
            store=store,
            settings=settings,
            workspaces=self._workspaces,
            turns=self._turns,
            redactor=redactor,
            policies=self._policies,
        )

    async def round_gate(self, task_id: str) -> Wait:
        """Whether a review round's job runs now, later, or not at all (worker/rounds.py)."""
        return await self._rounds.gate(task_id)

    async def run(self, job: Job, writer: LogWriter, *, token: str, attempt: int) -> None:
        """The job's phase, start to recorded outcome."""
        task = await self._store.tasks.get(job.task_id)
        policy = self._policies.effective(task.repository)
        own = policy.run_settings(self._settings, job.phase)
        agent = self.agents.for_run(task, own, policy)
        verb = {
            Phase.PLAN: "planning",
            Phase.EXECUTE: "executing the approved plan",
            Phase.ROUND: "addressing review feedback",
        }[job.phase]
        if task.kind is TaskKind.REVIEW:
            verb = "reviewing (read-only)"
        await writer.system(
            f"attempt {attempt} (delivery {job.deliveries}): {verb} with {agent.name} "
            f"on worker {self._worker}"
        )
        redactor = self._workbench.redactor(policy)
        run = Run(agent=agent, policy=policy, settings=own, redactor=redactor)
        if job.phase is Phase.ROUND:
            await self._rounds.run(run, task, writer, token)
        elif task.kind is TaskKind.REVIEW:
            await self._review(run, task, writer, token)
        elif job.phase is Phase.EXECUTE:
            await self._execute(run, task, writer, token)
        else:
            await self._plan(run, task, writer, token)

    async def _plan(self, run: Run, task: Task, writer: LogWriter, token: str) -> None:
        agent = run.agent
        try:
            resume = await self.quota.resumable(task, agent, Phase.PLAN, writer)
            path = self._workspaces.path(task.task_id)
            if resume is None:
                path = await self._clone(task, writer)
                await self._workspaces.checkout(path).hand_over()
            prompt = (
                RESUME_PROMPT
                if resume
                else planning_prompt(
                    repository=task.repository,
                    source=task.source,
                    title=task.title,
                    context=task.prompt,
                    previous_plan=task.plan,
                    feedback=task.feedback,
                    history=await self._store.tasks.feedbacks(task.task_id),
                    thread=await self._threads.comments(task, writer),
                    event=await self._threads.sentry_event(task, writer),
                    instructions=operator_instructions(run.policy),
                )
            )
            outcome = await self._turns.agent(
                run, task, path, Phase.PLAN, prompt, writer,
                setup=None if resume else checkout_setup(run.policy, path), resume=resume,
            )  # fmt: skip
            await self._turns.add_cost(outcome)
            if outcome.quota is not None:
                raise await self.quota.hit(
                    task, agent, Phase.PLAN, outcome, writer, token=token, policy=run.policy
                )
            if resume is not None and not outcome.ok:
                raise await self.quota.restart(task, agent, outcome, writer)
            await self.quota.settled(task, agent)
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
        plan = str(outcome.plan)
        await self._store.tasks.add_plan(task.task_id, plan)
        if task.feedback:
            # Kept before the field is cleared: every later revision's prompt shows it.
            await self._store.tasks.add_feedback(task.task_id, task.feedback)
        # Votes were for the previous plan; none can arrive before this one is pending.
        await self._store.tasks.clear_approvals(task.task_id)
        await writer.system("plan ready; waiting for approval")
        await writer.flush()
        fields |= {"plan": plan, "result": outcome.result, "error": None, "feedback": None}
        await self._store.tasks.advance(task.task_id, Action.PLAN_READY, token=token, fields=fields)
        await self._auto_approve(run.policy, task, plan, writer, token)

    async def _review(self, run: Run, task: Task, writer: LogWriter, token: str) -> None:
        """A review task: one read-only run whose answer is posted; never a commit or push.

        A rerun after the review was posted (a worker lost between posting and the status
        change, a retry) posts nothing again.
        """
        if task.review_url:
            await writer.system(f"review already posted: {task.review_url}; not posted again")
            done = Reviewed(AgentOutcome(ok=True), {"result": task.review_url})
        else:

            async def posted(url: str) -> None:
                await self._store.tasks.set_fenced(task.task_id, token, {"review_url": url})

            done = await self._reviews.review(
                run.agent, task, writer, settings=run.settings, on_posted=posted
            )
            await self._turns.add_cost(done.outcome)
        if not done.outcome.ok:
            await self._fail(task, writer, token, done.outcome, done.fields)
            return
        await self._workspaces.remove(task.task_id)
        await writer.flush()
        await self._store.tasks.advance(
            task.task_id, Action.FINISH_REVIEW, token=token, fields=done.fields | {"error": None}
        )

    async def _auto_approve(
        self, policy: Policy, task: Task, plan: str, writer: LogWriter, token: str
    ) -> None:
        """Approve as ``policy`` when one of the repository's ``auto_approve`` rules matches."""
        files = len(plan_files(plan))
        facts = Facts(source=task.source, labels=tuple(task.labels), level=task.level, files=files)
        found = policy.auto_rule(facts)
        if found is None:
            return
        number, rule = found
        text = f"auto-approved by policy rule {number} of {task.repository}: {rule.describe()}"
        # The transition logs it (``[system] status approved: auto-approved by …``), after
        # every line written so far.
        await writer.flush()
        fields = {"approver": "policy", "approval_comment": None, "phase": Phase.EXECUTE}
        # Fenced by this attempt's token: a person's cancel or reject in between wins.
        await self._store.tasks.advance(
            task.task_id,
            Action.APPROVE,
            token=token,
            reason=text,
            fields=fields,
            enqueue=Phase.EXECUTE,
        )

    async def _execute(self, run: Run, task: Task, writer: LogWriter, token: str) -> None:
        agent = run.agent
        branch = f"hookagent/{task.task_id}"
        fields: dict[str, Any] = {"agent": agent.name, "branch": branch}
        try:
            prompt = execution_prompt(
                repository=task.repository,
                source=task.source,
                title=task.title,
                context=task.prompt,
                plan=task.plan or "",
                comment=task.approval_comment,
                instructions=operator_instructions(run.policy),
            )
            resume = await self.quota.resumable(task, agent, Phase.EXECUTE, writer)
            if resume is not None and resume.base:
                path, base = self._workspaces.path(task.task_id), resume.base
            else:
                resume = None
                path = await self._clone(task, writer)
                checkout = self._workspaces.checkout(path)
                base = await checkout.start_branch(branch)
                await checkout.hand_over()
            outcome = await self._turns.agent(
                run, task, path, Phase.EXECUTE, RESUME_PROMPT if resume else prompt, writer,
                setup=None if resume else checkout_setup(run.policy, path), resume=resume,
            )  # fmt: skip
            await self._turns.add_cost(outcome)
            if outcome.quota is not None:
                raise await self.quota.hit(
                    task,
                    agent,
                    Phase.EXECUTE,
                    outcome,
                    writer,
                    token=token,
                    policy=run.policy,
                    base=base,
                )
            if resume is not None and not outcome.ok:
                raise await self.quota.restart(task, agent, outcome, writer)
            await self.quota.settled(task, agent)
            fields |= outcome.stats
            if outcome.ok:
                report = await self._turns.test(run, task, path, writer, prompt)
                fields["checks"] = json.dumps(report.checks)
                stat = await self._check_change(run, task, path, base, writer)
                if stat is not None:
                    await self._hold(task, writer, token, stat, fields)
                    return
                checkout = self._workspaces.checkout(path)
                fields["diff_stat"] = await describe_change(checkout, base, self._redactor)
                fields |= await self._publisher.publish(
                    task, path, branch, base, writer, report=report
                )
        except (AgentError, WorkspaceError, PullRequestError, PolicyViolation) as exc:
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

    async def _check_change(
        self, run: Run, task: Task, path: Path, base: str, writer: LogWriter
    ) -> str | None:
        """The checks on the change before anything is committed or pushed (vetting.py).

        A denied path or a secret fails the task. An auto-approved change that no
        ``auto_approve`` rule allows once its files are counted returns its diff stat.
        """
        policy, checkout = run.policy, self._workspaces.checkout(path)
        changed = await vet_change(
            checkout, base, policy=policy, redactor=run.redactor, repository=task.repository,
            writer=writer,
        )  # fmt: skip
        return await recheck_auto_approval(
            checkout, base, task=task, policy=policy, files=len(changed)
        )

    async def _hold(
        self, task: Task, writer: LogWriter, token: str, stat: str, fields: dict[str, Any]
    ) -> None:
        """Back to ``pending_approval`` with the diff stat; nothing committed or pushed.

        The workspace is not kept: a job may run on any worker, so an approval executes the
        plan again (approved by a person, so no ``max_files`` applies then).
        """
        lines = stat.rstrip().splitlines()
        summary = lines[-1].strip() if lines else "no change"
        shown = self._redactor.redact_lines([f"diff stat: {line}" for line in lines])
        writer.add_lines(LogStream.SYSTEM, shown)
        reason = (
            f"no auto_approve rule of {task.repository} allows this change ({summary}); "
            "nothing pushed, an approval executes the plan again"
        )
        await self._workspaces.remove(task.task_id)
        await self._store.tasks.clear_approvals(task.task_id)
        await writer.flush()
        fields |= {"result": "\n".join(lines), "error": None, "branch": None}
        await self._store.tasks.advance(
            task.task_id, Action.HOLD_CHANGE, token=token, reason=reason, fields=fields
        )

    async def _clone(self, task: Task, writer: LogWriter) -> Path:
        path = await self._workspaces.clone(task.task_id, task.repository, task.forge)
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
        # A failed task retried later starts afresh, never from a session parked before.
        await self._store.quota.unpark(task.task_id)
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

    @property
    def workspaces(self) -> Workspaces:
        """The worker's workspaces (their background work: :meth:`Workspaces.settled`)."""
        return self._workspaces

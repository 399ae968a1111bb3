"""A review round: the execute phase again, on the change request's own branch as it is now.

The round's job waits (deferred through the queue, store/queue.py) until review feedback has
been quiet for ``HOOKAGENT_FEEDBACK_DEBOUNCE_S``; then the task goes ``completed → revising``,
the round takes every pending item (store/reviews.py), and the agent runs in the execute
sandbox on a fresh checkout of the branch's current head, commits by people included. The
change passes the same policy and secret scan as an execution (vetting.py), is committed as
``hookagent: address review (round N)`` and pushed fast-forward only: a push the remote
refuses (someone pushed meanwhile) fails the round with git's reason, never a force push.
Each inline comment gets a reply; the status change rewrites the status comment. Past the
policy's ``max_rounds`` one comment says so and nothing runs.

Like an execution, a round runs setup before the agent and the policy's ``test`` after it,
with fix turns (turns.py); how the test went is in the round's outcome, its replies and the
task's ``checks``. But the branch holds the agent's earlier commits, so setup is never the
branch's: it is the policy's, else ``.hookagent/setup.sh`` as the default branch has it, and
it runs without ``setup_env`` (setup.round_setup).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from hookagent.agents import AgentOutcome
from hookagent.briefing.prompts import round_prompt
from hookagent.errors import (
    AgentError,
    OutboundError,
    PolicyViolation,
    TaskNotFound,
    WorkspaceError,
)
from hookagent.forges import Forge, build_forges
from hookagent.models import (
    CHANGE_OPEN,
    Action,
    CheckResult,
    LogStream,
    Phase,
    Task,
    TaskStatus,
    one_line,
    utc_iso,
)
from hookagent.policy import Policies
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import NewLine, Round, Store
from hookagent.store.writer import LogWriter
from hookagent.worker.checks import TestReport
from hookagent.worker.cifix import CheckFixes
from hookagent.worker.setup import SETUP_FILE, operator_instructions, round_setup
from hookagent.worker.turns import Run, Turns
from hookagent.worker.vetting import vet_change
from hookagent.worker.workspace import Workspaces

REPLY_MAX_CHARS = 1_000


@dataclass(frozen=True, slots=True)
class Pushed:
    """What a round did: the commit it pushed (None: no change) and its test's report."""

    commit: str | None
    report: TestReport

    def describe(self) -> str:
        """The round's outcome: ``pushed 1a2b3c4d5e6f; test passed``."""
        done = f"pushed {self.commit[:12]}" if self.commit else "no change needed"
        result = self.report.result
        return done if result is CheckResult.NOT_CONFIGURED else f"{done}; test {result.value}"


def round_record(
    taken: Round, outcome: str, pushed: Pushed | None, *, error: str | None
) -> dict[str, Any]:
    """What a finished round keeps (store/reviews.py): its items, how and when it ended.

    ``outcome`` is the line the log and the status comment show; the fields after it say the
    same for readers that sort or link (``GET /tasks/{id}``). ``error`` is redacted already.
    """
    test = pushed.report.result if pushed is not None else CheckResult.NOT_CONFIGURED
    return {
        "number": taken.number,
        "items": taken.items,
        "outcome": outcome,
        "finished_at": utc_iso(),
        "commit": pushed.commit if pushed is not None else None,
        "test": None if test is CheckResult.NOT_CONFIGURED else test.value,
        "error": error,
    }


@dataclass(frozen=True, slots=True)
class Wait:
    """The round job's verdict before it is claimed: run now, later (ms), or not at all."""

    run: bool
    after_ms: int = 0


class Rounds:
    """Decides when a round job runs, and runs it (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        workspaces: Workspaces,
        turns: Turns,
        redactor: Redactor,
        policies: Policies,
    ) -> None:
        self._store = store
        self._settings = settings
        self._workspaces = workspaces
        self._turns = turns
        self._redactor = redactor
        self._policies = policies
        self._forges = build_forges(settings)
        self._checks = CheckFixes(
            store=store, forges=self._forges, redactor=redactor, policies=policies
        )

    async def gate(self, task_id: str) -> Wait:
        """Whether the round job runs now; deferred while feedback still arrives.

        A task whose change request closed, and one past ``max_rounds``, runs nothing: its
        pending feedback is dropped (once past the cap, one comment says so).
        """
        try:
            task = await self._store.tasks.get(task_id)
        except TaskNotFound:
            return Wait(run=False)
        if task.status not in CHANGE_OPEN:
            if dropped := await self._store.reviews.drop(task_id):
                await self._say(task_id, f"{dropped} review items dropped: task is {task.status}")
            return Wait(run=False)
        if task.status is TaskStatus.REVISING:
            return Wait(run=True)  # this round's worker died: it starts again
        if await self._checks.settle(task) == 0:
            return Wait(run=False)  # the failing checks were offered, or are not fixed again
        at, done = await self._store.reviews.state(task_id)
        quiet_ms = int(time.time() * 1000) - (at or 0)
        debounce_ms = int(self._settings.feedback_debounce_s * 1000)
        # Checks fail once per push, not in a burst: a CI fix alone need not wait.
        if quiet_ms < debounce_ms and not await self._ci_only(task_id):
            return Wait(run=False, after_ms=debounce_ms - quiet_ms)
        cap = self._policies.effective(task.repository).max_rounds
        if done >= cap:
            await self._capped(task, cap)
            return Wait(run=False)
        return Wait(run=True)

    async def _ci_only(self, task_id: str) -> bool:
        """Whether every pending item is a failing checks' report."""
        pending = await self._store.reviews.pending(task_id)
        return bool(pending) and all(item.get("kind") == "ci" for item in pending)

    async def _capped(self, task: Task, cap: int) -> None:
        """Drop the feedback; the first time, one comment on the change request says why."""
        dropped = await self._store.reviews.drop(task.task_id)
        text = (
            f"max_rounds reached: {cap} review rounds ran (max_rounds of {task.repository}'s "
            f"policy); {dropped} new review items not acted on"
        )
        await self._say(task.task_id, text)
        if not await self._store.reviews.mark_capped(task.task_id):
            return
        forge = self._forges.get(task.forge)
        if forge is None or task.pr_number is None:
            return
        body = (
            f"hookagent has run {cap} review rounds on this change, the most its policy allows "
            f"(`max_rounds`); further review comments are not acted on.\n\n"
            f"<!-- hookagent:{task.task_id} -->"
        )
        try:
            await forge.comment_on_change(task.repository, task.pr_number, body)
        except OutboundError as exc:
            await self._say(task.task_id, f"could not say so on the change request: {exc.message}")

    async def run(self, job: Run, task: Task, writer: LogWriter, token: str) -> None:
        """Take the pending feedback and run the round to a delivered task again."""
        taken = await self._store.reviews.take(task.task_id)
        # A failure kept after this job's gate is not read yet: its offer or fix is lost.
        unread = [i for i in taken.items if i.get("kind") == "ci" and not i.get("ready")]
        if unread:
            await writer.system(f"{len(unread)} failing checks arrived too late for this round")
            taken = Round(taken.number, [i for i in taken.items if i not in unread])
        if not taken.items:
            await self._finish(task, writer, token, taken, "nothing to address", None)
            return
        await writer.system(f"review round {taken.number}: {len(taken.items)} items to address")
        try:
            pushed = await self._round(job, task, writer, taken)
        except (AgentError, WorkspaceError, PolicyViolation) as exc:
            error = job.redactor.redact(exc.message)
            await self._workspaces.remove(task.task_id)
            await self._finish(task, writer, token, taken, f"failed: {error}", None, error=error)
            return
        await self._workspaces.remove(task.task_id)
        await self._reply(task, taken, pushed, writer)
        await self._finish(task, writer, token, taken, pushed.describe(), pushed)

    async def _round(self, job: Run, task: Task, writer: LogWriter, taken: Round) -> Pushed:
        """Check out the branch, set up, run the agent and the test, vet, commit and push."""
        if not task.branch:
            raise WorkspaceError("the task records no branch to revise")
        path = await self._workspaces.clone(task.task_id, task.repository, task.forge)
        # Read before the branch is checked out: the default branch's script, not the copy
        # the agent's earlier commits may have rewritten.
        checkout = self._workspaces.checkout(path)
        script = None
        if job.policy.setup is None:
            script = await checkout.committed_file(str(SETUP_FILE))
        head = await checkout.check_out_branch(task.branch, task.forge)
        await writer.system(f"checked out {task.branch} at {head[:12]}")
        await checkout.hand_over()
        prompt = round_prompt(
            repository=task.repository,
            source=task.source,
            title=task.title,
            context=task.prompt,
            plan=task.plan or "",
            number=taken.number,
            items=taken.items,
            earlier=await self._store.reviews.rounds(task.task_id),
            instructions=operator_instructions(job.policy),
        )
        outcome: AgentOutcome = await self._turns.agent(
            job, task, path, Phase.EXECUTE, prompt, writer, setup=round_setup(job.policy, script)
        )
        await self._turns.add_cost(outcome)
        if not outcome.ok:
            raise AgentError(outcome.error or "the agent failed")
        report = await self._turns.test(job, task, path, writer, prompt)
        await vet_change(
            checkout,
            head,
            policy=job.policy,
            redactor=job.redactor,
            repository=task.repository,
            writer=writer,
        )
        s = self._settings
        ci = all(item.get("kind") == "ci" for item in taken.items)
        what = "fix failing checks" if ci else "address review"
        sha = await self._workspaces.checkout(path).commit_all(
            f"hookagent: {what} (round {taken.number})\n\nhookagent task {task.task_id}",
            name=s.git_author_name,
            email=s.git_author_email,
        )
        if sha is None:
            await writer.system("the agent changed nothing; no commit")
            return Pushed(None, report)
        try:
            await self._workspaces.checkout(path).push(task.branch, task.forge)
        except WorkspaceError as exc:
            raise WorkspaceError(f"push of {task.branch} rejected: {exc.message}") from None
        await writer.system(f"pushed {sha[:12]} to {task.branch}")
        return Pushed(sha, report)

    async def _reply(self, task: Task, taken: Round, pushed: Pushed, writer: LogWriter) -> None:
        """A reply under each inline comment of the round (a failed reply is logged, no more)."""
        forge = self._forges.get(task.forge)
        if forge is None or task.pr_number is None:
            return
        commit = pushed.commit
        done = f"Addressed in {commit[:12]}" if commit else "Looked at this; no change was needed"
        done += f" (review round {taken.number})"
        if pushed.report.result is not CheckResult.NOT_CONFIGURED:
            done += f"; the test command {pushed.report.result.value}"
        for item in taken.items:
            thread = item.get("reply_to")
            if item.get("kind") != "inline" or not thread:
                continue
            body = self._redactor.redact(f"{done}.\n\n<!-- hookagent:{task.task_id} -->")
            await self._reply_one(forge, task, str(thread), body[:REPLY_MAX_CHARS], writer)

    async def _reply_one(
        self, forge: Forge, task: Task, thread: str, body: str, writer: LogWriter
    ) -> None:
        number = task.pr_number or 0
        try:
            await forge.reply_in_review(task.repository, number, thread, body)
        except OutboundError as exc:
            await writer.system(f"reply to review comment {one_line(thread, 40)} failed: {exc}")

    async def _finish(
        self,
        task: Task,
        writer: LogWriter,
        token: str,
        taken: Round,
        outcome: str,
        pushed: Pushed | None,
        *,
        error: str | None = None,
    ) -> None:
        """Back to ``completed`` (the reason says how the round went), then the next round."""
        reason = f"review round {taken.number} {outcome}"
        fields: dict[str, Any] = {"error": error, "result": reason}
        if pushed is not None:
            fields["checks"] = json.dumps(pushed.report.checks)
            if pushed.commit:
                fields["commit"] = pushed.commit
        record = round_record(taken, outcome, pushed, error=error)
        await self._store.reviews.close(task.task_id, record if taken.items else None)
        await writer.flush()
        await self._store.tasks.advance(
            task.task_id, Action.FINISH_ROUND, token=token, reason=reason, fields=fields
        )
        # Only now: a job queued while the task is ``revising`` would start as a restart.
        if await self._store.reviews.next_round(task.task_id):
            await self._say(task.task_id, "more review feedback arrived: next round queued")

    async def _say(self, task_id: str, text: str) -> None:
        line = NewLine(utc_iso(), LogStream.SYSTEM.value, f"[system] {one_line(text)}")
        await self._store.logs.append(task_id, [line])

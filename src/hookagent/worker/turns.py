"""The agent's turns on a change, as an execution and a review round both take them.

A turn is setup (when one is given: setup.py decides which, and whether ``setup_env``
reaches it), then the agent, with the repository's cache held throughout; after the turn
that made the change, the policy's ``test`` command with the repository's cache bound as
the agent had it, and the agent's fix turns (checks.py). A fix turn runs no setup: the
workspace is the agent's work by then.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hookagent.agents import Agent, AgentOutcome
from hookagent.errors import AgentError
from hookagent.models import Phase, Task
from hookagent.policy import Policy
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import Parked, Store
from hookagent.store.writer import LogWriter
from hookagent.worker.checks import Checker, TestReport
from hookagent.worker.run import AgentSession
from hookagent.worker.setup import SetupScript, Workbench
from hookagent.worker.workspace import Workspaces


@dataclass(frozen=True, slots=True)
class Run:
    """One job's agent, its repository's policy, the settings that policy makes, its redactor."""

    agent: Agent
    policy: Policy
    settings: Settings
    redactor: Redactor


class Turns:
    """Runs the agent's turns on a workspace (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        session: AgentSession,
        workbench: Workbench,
        workspaces: Workspaces,
        redactor: Redactor,
    ) -> None:
        self._store = store
        self._settings = settings
        self._session = session
        self._workbench = workbench
        self._workspaces = workspaces
        self._redactor = redactor

    async def agent(
        self,
        run: Run,
        task: Task,
        path: Path,
        phase: Phase,
        prompt: bytes,
        writer: LogWriter,
        *,
        setup: SetupScript | None,
        resume: Parked | None = None,
    ) -> AgentOutcome:
        """``setup`` (None: none), then the agent, with the repository's cache held throughout."""
        bench = self._workbench.prepared(
            run.policy, run.settings, task, path, writer, setup=setup if resume is None else None
        )
        async with bench as (cache, ran_setup):
            if phase is Phase.EXECUTE and ran_setup:
                left = await self._workspaces.checkout(path).leave_out_untracked()
                if left:
                    shown = self._redactor.redact(", ".join(left[:20]))
                    await writer.system(f"setup's new files are left out of the commit: {shown}")
            return await self._session.run(
                run.agent, path, phase, prompt, writer,
                settings=run.settings, cache=cache, redactor=run.redactor, resume=resume,
            )  # fmt: skip

    async def test(
        self, run: Run, task: Task, path: Path, writer: LogWriter, prompt: bytes
    ) -> TestReport:
        """The policy's ``test`` on the change, with the agent's fix turns; a failed turn raises.

        ``prompt``: the turn's that made the change, which a fix turn repeats.
        """

        async def fix(text: bytes) -> AgentOutcome:
            outcome = await self.agent(run, task, path, Phase.EXECUTE, text, writer, setup=None)
            await self.add_cost(outcome)
            return outcome

        # The run's redactor: a failed test's output reaches a draft PR's body, and setup
        # may have left a setup_env value in the workspace.
        checker = Checker(settings=self._settings, redactor=run.redactor)
        # Held for the whole check: the sweep's eviction never removes a cache in use.
        async with self._workbench.caches.use(task.repository, task.forge) as cache:
            report, failed = await checker.check(
                run.policy, path, writer, settings=run.settings, fix=fix, prompt=prompt,
                cache=cache,
            )  # fmt: skip
        if failed is not None:
            raise AgentError(f"fix turn after a failed test: {failed.error or 'agent failed'}")
        return report

    async def add_cost(self, outcome: AgentOutcome) -> None:
        """Add what the agent reported spending to ``hookagent_cost_usd_total``."""
        cost = outcome.stats.get("total_cost_usd")
        if isinstance(cost, int | float) and cost > 0:
            await self._store.metrics.add_cost(float(cost))

"""Quotas park, they don't fail: what a run that ended on its model's quota does to its task.

The task keeps its status and its job comes back once the agent's quota is expected back
(the API's ``Retry-After``, else a backoff, at most ``HOOKAGENT_QUOTA_WAIT_MAX``); the next
run resumes the CLI's session where it can. Past that wait the policy's ``fallback_agents``
take the phase over. The agent's quota is shared by all workers (``store/quota.py``): once
two tasks have hit it, a job of an agent out of quota is handed back before it is claimed,
without calling the model.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from hookagent.agents import Agent, AgentOutcome
from hookagent.agents.quota import QuotaHit
from hookagent.errors import QuotaParked
from hookagent.models import LogStream, Phase, Task, utc_iso
from hookagent.policy import Policy
from hookagent.settings import Settings
from hookagent.store import AgentQuota, NewLine, Parked, Store
from hookagent.store.writer import LogWriter
from hookagent.worker.workspace import Workspaces

# A CLI session id as the three CLIs write them (UUIDs): it goes back on their command line,
# so nothing that could read as an option or hold a separator passes.
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def session_id(value: object) -> str | None:
    """``value`` when it is a plausible session id, else None (the run then starts afresh).

    The id comes from the CLI's output, which the agent may have a hand in: ``--resume
    --dangerously-skip-permissions`` must never be what a resumed run is given.
    """
    if isinstance(value, str) and _SESSION_ID.fullmatch(value):
        return value
    return None


def clock(epoch: float) -> str:
    """``HH:MM:SS`` (UTC) of an epoch time, as the waiting line shows it."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def waiting_line(quota: AgentQuota) -> str:
    """The ``[system]`` line of a task that waits for ``quota``."""
    return f"waiting for the model quota until {clock(quota.until)} ({quota.agent}, {quota.reason})"


class QuotaGate:
    """Holds jobs back while their agent's quota is out, and parks runs that hit it."""

    def __init__(self, *, store: Store, settings: Settings, workspaces: Workspaces) -> None:
        self._store = store
        self._settings = settings
        self._workspaces = workspaces

    async def held(self, task_id: str, agent: str) -> AgentQuota | None:
        """The agent's quota mark when a run of it must wait; the task's log says so once.

        Every wait is counted (``hookagent_agent_quota_waits_total``) the first time the task
        sees that mark; the task's resume point, if it has one, is kept.
        """
        quota = await self._store.quota.state(agent)
        if quota is None or not quota.shared:
            # One task's wall (which its agent could fake) holds back that task only.
            return None
        parked = await self._store.quota.parked(task_id)
        if parked is not None and parked.until >= quota.until:
            return quota  # this wait was logged and counted already
        text = f"[system] {waiting_line(quota)}"
        await self._store.logs.append(task_id, [NewLine(utc_iso(), LogStream.SYSTEM.value, text)])
        await self._store.metrics.count_quota_wait(agent)
        kept = parked or Parked(agent=agent, phase="", session=None, base=None)
        await self._store.quota.park(task_id, kept.waiting_until(quota.until))
        return quota

    async def resumable(
        self, task: Task, agent: Agent, phase: Phase, writer: LogWriter
    ) -> Parked | None:
        """The session parked on the quota this run of ``agent`` continues, if any.

        None (a fresh start) when there is none, or when the workspace it left is not on
        this host: the CLI resumes in that workspace, with the config home beside it.
        """
        parked = await self._store.quota.parked(task.task_id)
        if parked is None or parked.agent != agent.name or parked.phase != phase.value:
            return None
        if not parked.session:
            return None
        if not self._workspaces.kept(task.task_id):
            await writer.system(
                f"session {parked.session} of {agent.name} not resumed: its workspace is not "
                "on this worker; starting the phase afresh"
            )
            return None
        await writer.system(f"resuming session {parked.session} of {agent.name}")
        return parked

    async def restart(
        self, task: Task, agent: Agent, outcome: AgentOutcome, writer: LogWriter
    ) -> QuotaParked:
        """A resumed session failed otherwise than on the quota (the CLI lost it, say): the
        error that hands the job back to start the phase afresh, once."""
        await writer.system(
            f"the resumed session of {agent.name} failed ({outcome.error}); "
            "starting the phase afresh"
        )
        await writer.flush()
        await self._store.quota.unpark(task.task_id)
        return QuotaParked("resumed session failed", after_s=0)

    async def settled(self, task: Task, agent: Agent) -> None:
        """The run ended otherwise than on the quota: the task waits no more, nor the agent."""
        await self._store.quota.unpark(task.task_id)
        await self._store.quota.recover(agent.name)

    async def hit(
        self,
        task: Task,
        agent: Agent,
        phase: Phase,
        outcome: AgentOutcome,
        writer: LogWriter,
        *,
        token: str,
        policy: Policy,
        base: str | None = None,
    ) -> QuotaParked:
        """Record the hit; the error that hands the job back to wait (or to a fallback agent)."""
        hit = outcome.quota or QuotaHit(reason=outcome.error or "quota")
        cap = self._settings.quota_wait_max
        marked = await self._store.quota.exhaust(
            agent.name,
            task_id=task.task_id,
            # The CLI's text, which the agent can write into: shown in other tasks' logs
            # and /workers once shared, never holding a secret.
            reason=writer.redact(hit.reason),
            retry_after_s=hit.retry_after_s,
            wait_max_s=cap,
        )
        fallback = fallback_after(policy, agent.name)
        if marked.wanted_s > cap and fallback is not None:
            await writer.system(
                f"{agent.name}'s quota wait ({marked.wanted_s:.0f}s) would pass "
                f"HOOKAGENT_QUOTA_WAIT_MAX={cap:g}; {fallback} takes the {phase.value} phase "
                "from the start"
            )
            await writer.flush()
            await self._store.tasks.set_fenced(task.task_id, token, {"agent": fallback})
            await self._store.quota.unpark(task.task_id)
            return QuotaParked(f"handed to {fallback}", after_s=0)
        parked = Parked(
            agent=agent.name,
            phase=phase.value,
            session=session_id(outcome.stats.get("session_id")),
            base=base,
            until=marked.quota.until,
        )
        await writer.system(waiting_line(marked.quota))
        await writer.flush()
        await self._store.quota.park(task.task_id, parked)
        await self._store.metrics.count_quota_wait(agent.name)
        return QuotaParked(
            f"waiting for {agent.name}'s quota", after_s=marked.quota.remaining(time.time())
        )


def fallback_after(policy: Policy, current: str) -> str | None:
    """The fallback after ``current`` in the policy's list (the first when it is not listed)."""
    agents = list(policy.fallback_agents)
    if current in agents:
        agents = agents[agents.index(current) + 1 :]
    return next((name for name in agents if name != current), None)

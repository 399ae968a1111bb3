"""Which agent runs a task: the task's own, its repository policy's, or the worker's default.

A module of its own because two parts ask it: the quota gate (gates.py) wants the agent's
name before a job is claimed, and the phase runner wants the adapter itself; both must
answer alike, so one object answers both.
"""

from __future__ import annotations

from hookagent.agents import Agent, build_agent
from hookagent.agents.mcp import secret_values
from hookagent.errors import TaskNotFound
from hookagent.models import TERMINAL_STATUSES, Task
from hookagent.policy import Policies, Policy
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import Store


class AgentChoice:
    """Picks the agent adapter of a task's run; adapters of other CLIs built once and kept."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        agent: Agent,
        redactor: Redactor,
        policies: Policies,
    ) -> None:
        self._store = store
        self._settings = settings
        self._agent = agent
        self._redactor = redactor
        self._policies = policies
        self._others: dict[str, Agent] = {}

    async def name_of(self, task_id: str) -> str | None:
        """The agent a run of the task would use; None when the task is gone or ended."""
        try:
            task = await self._store.tasks.get(task_id)
        except TaskNotFound:
            return None
        if task.status in TERMINAL_STATUSES:
            return None  # cancelled while it waited, say: the claim that follows skips it
        own = self._policies.effective(task.repository).run_settings(self._settings)
        if task.agent:
            return task.agent
        return own.agent if own is not self._settings else self._agent.name

    def for_run(self, task: Task, own: Settings, policy: Policy) -> Agent:
        """The task's own agent when it names one (``?agent=`` on the webhook), else the default.

        A repository policy that sets the agent, model, budget, tools or MCP servers gets an
        adapter built for this run. The servers' secrets are redacted from now on.
        """
        if policy.mcp_servers:
            self._redactor.learn(secret_values(policy.mcp_servers))
            chosen = own.model_copy(update={"agent": task.agent}) if task.agent else own
            return build_agent(chosen, mcp_servers=policy.mcp_servers)
        if own is not self._settings:
            return build_agent(own.model_copy(update={"agent": task.agent}) if task.agent else own)
        name = task.agent or self._agent.name
        if name == self._agent.name:
            return self._agent
        if name not in self._others:
            self._others[name] = build_agent(self._settings.model_copy(update={"agent": name}))
        return self._others[name]

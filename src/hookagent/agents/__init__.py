"""Agent CLIs: the subprocess runner and one adapter per CLI. Knows nothing of Redis."""

from __future__ import annotations

from hookagent.agents.base import Agent, AgentLine, AgentOutcome, AgentRun
from hookagent.agents.claude import ClaudeAgent
from hookagent.agents.command import CommandAgent
from hookagent.agents.runner import RunResult, run_process
from hookagent.settings import Settings

__all__ = [
    "Agent",
    "AgentLine",
    "AgentOutcome",
    "AgentRun",
    "ClaudeAgent",
    "CommandAgent",
    "RunResult",
    "build_agent",
    "run_process",
]


def build_agent(settings: Settings) -> Agent:
    """The adapter ``HOOKAGENT_AGENT`` names."""
    if settings.agent == "command":
        return CommandAgent(settings.agent_argv)
    return ClaudeAgent(
        settings.claude_bin,
        model=settings.claude_model,
        max_turns=settings.claude_max_turns,
        extra_args=settings.claude_extra_argv,
        allowed_tools=settings.allowed_tools,
    )

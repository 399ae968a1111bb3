"""Agent CLIs: the subprocess runner and one adapter per CLI. Knows nothing of Redis."""

from __future__ import annotations

from collections.abc import Mapping

from hookagent.agents.base import Agent, AgentLine, AgentOutcome, AgentRun, TextLines
from hookagent.agents.claude import ClaudeAgent
from hookagent.agents.codex import CodexAgent
from hookagent.agents.command import CommandAgent
from hookagent.agents.gemini import GeminiAgent
from hookagent.agents.runner import RunResult, run_process
from hookagent.policy import McpServer
from hookagent.settings import Settings

__all__ = [
    "Agent",
    "AgentLine",
    "AgentOutcome",
    "AgentRun",
    "ClaudeAgent",
    "CodexAgent",
    "CommandAgent",
    "GeminiAgent",
    "RunResult",
    "TextLines",
    "build_agent",
    "run_process",
]


def build_agent(settings: Settings, *, mcp_servers: Mapping[str, McpServer] | None = None) -> Agent:
    """The adapter ``HOOKAGENT_AGENT`` names, given ``mcp_servers`` (a policy's) if any.

    The ``command`` agent takes no MCP servers: it has no configuration to write them to.
    """
    if settings.agent == "command":
        return CommandAgent(settings.agent_argv)
    if settings.agent == "codex":
        return CodexAgent(
            settings.codex_bin,
            model=settings.agent_model,
            base_url=settings.codex_base_url,
            template=settings.codex_home,
            outer_sandbox=settings.sandbox == "bwrap",
            mcp_servers=mcp_servers,
        )
    if settings.agent == "gemini":
        return GeminiAgent(
            settings.gemini_bin,
            model=settings.agent_model,
            template=settings.gemini_home,
            mcp_servers=mcp_servers,
        )
    return ClaudeAgent(
        settings.claude_bin,
        model=settings.claude_model,
        max_turns=settings.claude_max_turns,
        extra_args=settings.claude_extra_argv,
        allowed_tools=settings.allowed_tools,
        max_budget_usd=settings.max_budget_usd,
        template=settings.claude_config_dir,
        mcp_servers=mcp_servers,
    )

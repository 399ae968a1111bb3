"""A repository's MCP servers (policy ``mcp_servers``) as each agent CLI's configuration.

The servers are children of the CLI, so they run where it runs: inside the sandbox, behind
the run's egress allowlist. ``env`` in the policy names variables; their values are read
from hookagent's environment here, written into the run's private configuration home (which
the agent can read: see the README) and known to the redactor, so the log never shows them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from hookagent.errors import AgentError
from hookagent.policy import McpServer

Servers = Mapping[str, McpServer]
# The file Claude Code reads with ``--mcp-config``, in the run's configuration home.
CLAUDE_MCP_FILE = "claude-mcp.json"


def server_env(name: str, server: McpServer, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables ``server`` gets, valued from ``environ``; every one must be set."""
    missing = [var for var in server.env if var not in environ]
    if missing:
        raise AgentError(
            f"MCP server {name}: {', '.join(missing)} not set in hookagent's environment"
        )
    return {var: environ[var] for var in server.env}


def secret_values(servers: Servers, environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of every variable the servers name: secrets, for the redactor."""
    env = os.environ if environ is None else environ
    return [env[var] for server in servers.values() for var in server.env if env.get(var)]


def claude_tools(servers: Servers) -> list[str]:
    """``--allowedTools`` entries allowing every tool of every server (``mcp__<name>``)."""
    return [f"mcp__{name}" for name in servers]


def claude_config(servers: Servers, environ: Mapping[str, str] | None = None) -> str:
    """The JSON of Claude Code's ``--mcp-config`` file."""
    env = os.environ if environ is None else environ
    entries: dict[str, Any] = {}
    for name, server in servers.items():
        if server.url is not None:
            entries[name] = {"type": "http", "url": server.url}
        else:
            entries[name] = {
                "type": "stdio",
                "command": server.command,
                "args": list(server.args),
                "env": server_env(name, server, env),
            }
    return json.dumps({"mcpServers": entries}, indent=2)


def codex_config(servers: Servers, environ: Mapping[str, str] | None = None) -> str:
    """Codex's ``[mcp_servers.<name>]`` tables for its ``config.toml``, their tools approved."""
    env = os.environ if environ is None else environ
    # JSON strings are TOML basic strings (same quotes and escapes); names are bare keys.
    out: list[str] = []
    for name, server in servers.items():
        out.append(f"[mcp_servers.{name}]")
        # ``codex exec`` never asks: a tool needing approval fails every call ("MCP tool
        # call requires approval, but approval policy is never"). The operator chose these
        # servers, as Claude Code's --allowedTools and Gemini's ``trust`` say.
        out.append('default_tools_approval_mode = "approve"')
        if server.url is not None:
            out.append(f"url = {json.dumps(server.url)}")
        else:
            out.append(f"command = {json.dumps(server.command)}")
            out.append(f"args = [{', '.join(json.dumps(arg) for arg in server.args)}]")
            values = server_env(name, server, env)
            pairs = ", ".join(f"{var} = {json.dumps(value)}" for var, value in values.items())
            out.append(f"env = {{ {pairs} }}" if pairs else "env = {}")
        out.append("")
    return "\n".join(out)


def gemini_config(servers: Servers, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Gemini CLI's ``mcpServers`` setting; ``trust``: the operator chose these tools."""
    env = os.environ if environ is None else environ
    entries: dict[str, Any] = {}
    for name, server in servers.items():
        if server.url is not None:
            entries[name] = {"httpUrl": server.url, "trust": True}
        else:
            entries[name] = {
                "command": server.command,
                "args": list(server.args),
                "env": server_env(name, server, env),
                "trust": True,
            }
    return entries


def commands(servers: Servers) -> list[list[str]]:
    """Each stdio server's command line: what the sandbox must show for it to start."""
    return [[s.command, *s.args] for s in servers.values() if s.command is not None]

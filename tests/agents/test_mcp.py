"""Policy MCP servers as each CLI's configuration: Claude Code, Codex, Gemini; their log lines."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from hookagent.agents.claude import ClaudeAgent
from hookagent.agents.codex import CodexAgent, CodexRun
from hookagent.agents.gemini import GeminiAgent
from hookagent.agents.mcp import secret_values
from hookagent.errors import AgentError
from hookagent.models import EventKind, LogStream, Phase
from hookagent.policy import McpServer
from hookagent.redact import Redactor

SECRET = "docs-auth-5e2a91c07b"
SERVERS = {
    "docs": McpServer(command="python3", args=("-I", "/opt/docs/server.py"), env=("DOCS_AUTH",)),
    "web": McpServer(url="https://mcp.example.com/mcp"),
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The run's home, with ``DOCS_AUTH`` in hookagent's environment."""
    monkeypatch.setenv("DOCS_AUTH", SECRET)
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    return run


def private(path: Path) -> bool:
    """Whether only its owner may read ``path``."""
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_claude_code_gets_an_mcp_config_file_and_only_it(home: Path) -> None:
    agent = ClaudeAgent("claude", allowed_tools=["Read", "Edit"], mcp_servers=SERVERS)
    # The CLI waits for the servers before its first request.
    assert agent.configure(home, {}) == {"MCP_CONNECTION_NONBLOCKING": "false"}
    written = home / "claude-mcp.json"
    assert private(written)
    assert json.loads(written.read_text()) == {
        "mcpServers": {
            "docs": {
                "type": "stdio",
                "command": "python3",
                "args": ["-I", "/opt/docs/server.py"],
                "env": {"DOCS_AUTH": SECRET},
            },
            "web": {"type": "http", "url": "https://mcp.example.com/mcp"},
        }
    }
    inside = Path("/run/hookagent/agent-home")
    assert agent.config_argv(inside) == [
        "--strict-mcp-config",
        "--mcp-config",
        str(inside / "claude-mcp.json"),
    ]
    execute, plan = agent.argv(Phase.EXECUTE), agent.argv(Phase.PLAN)
    assert execute[execute.index("--allowedTools") + 1] == "Read,Edit,mcp__docs,mcp__web"
    assert plan[plan.index("--allowedTools") + 1] == "mcp__docs,mcp__web"
    assert SECRET not in " ".join(execute + plan)


def test_without_servers_nothing_changes_for_claude_code(home: Path) -> None:
    agent = ClaudeAgent("claude")
    agent.configure(home, {})
    assert list(home.iterdir()) == [] and agent.config_argv(home) == ["--strict-mcp-config"]
    assert "--allowedTools" not in agent.argv(Phase.PLAN)


def test_codex_gets_mcp_servers_tables_in_its_config_toml(home: Path) -> None:
    variables = CodexAgent("codex", mcp_servers=SERVERS).configure(home, {})
    config = Path(variables["CODEX_HOME"]) / "config.toml"
    assert private(config)
    parsed = tomllib.loads(config.read_text())
    assert parsed["model_provider"] == "hookagent"  # ours still selects the model
    assert parsed["mcp_servers"] == {
        "docs": {
            "default_tools_approval_mode": "approve",
            "command": "python3",
            "args": ["-I", "/opt/docs/server.py"],
            "env": {"DOCS_AUTH": SECRET},
        },
        "web": {"default_tools_approval_mode": "approve", "url": "https://mcp.example.com/mcp"},
    }


def test_a_codex_template_naming_the_same_server_is_refused(home: Path, tmp_path: Path) -> None:
    template = tmp_path / "codex-template"
    template.mkdir()
    (template / "config.toml").write_text('[mcp_servers.docs]\ncommand = "other"\n')
    agent = CodexAgent("codex", template=template, mcp_servers=SERVERS)
    with pytest.raises(AgentError, match="cannot take the MCP servers"):
        agent.configure(home, {})


def test_gemini_gets_mcp_servers_in_its_settings_json(home: Path) -> None:
    variables = GeminiAgent("gemini", mcp_servers=SERVERS).configure(home, {})
    settings = Path(variables["GEMINI_CLI_HOME"]) / ".gemini" / "settings.json"
    assert private(settings)
    written = json.loads(settings.read_text())
    assert written["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert written["mcpServers"] == {
        "docs": {
            "command": "python3",
            "args": ["-I", "/opt/docs/server.py"],
            "env": {"DOCS_AUTH": SECRET},
            "trust": True,
        },
        "web": {"httpUrl": "https://mcp.example.com/mcp", "trust": True},
    }


@pytest.mark.parametrize("cli", [ClaudeAgent, CodexAgent, GeminiAgent])
def test_an_unset_variable_fails_the_run_naming_it(
    cli: type[ClaudeAgent | CodexAgent | GeminiAgent], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCS_AUTH")
    with pytest.raises(AgentError) as caught:
        cli("x", mcp_servers=SERVERS).configure(home, {})
    assert caught.value.message == "MCP server docs: DOCS_AUTH not set in hookagent's environment"


def test_the_redactor_learns_the_servers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_AUTH", SECRET)
    redactor = Redactor(["some-other-secret-1"])
    assert redactor.redact(f"token {SECRET}") == f"token {SECRET}"
    redactor.learn(secret_values(SERVERS))
    assert redactor.redact(f"token {SECRET}") == "token [REDACTED:secret]"
    assert redactor.redact("some-other-secret-1") == "[REDACTED:secret]"


def test_codex_logs_an_mcp_tool_call_as_claude_code_names_it() -> None:
    run = CodexRun()
    item = {
        "id": "item_3",
        "type": "mcp_tool_call",
        "server": "docs",
        "tool": "lookup",
        "arguments": {"query": "currency"},
        "status": "in_progress",
    }
    started = run.parse(LogStream.STDOUT, json.dumps({"type": "item.started", "item": item}))
    assert [(line.kind, line.text) for line in started] == [
        (EventKind.TOOL_USE, 'mcp__docs__lookup: {"query": "currency"}')
    ]
    done = item | {
        "status": "completed",
        "result": {"content": [{"type": "text", "text": "found currency"}]},
    }
    completed = run.parse(LogStream.STDOUT, json.dumps({"type": "item.completed", "item": done}))
    assert [(line.kind, line.text) for line in completed] == [
        (EventKind.TOOL_RESULT, "tool result: mcp__docs__lookup: found currency")
    ]
    failed = item | {"status": "failed", "error": {"message": "server gone"}}
    refused = run.parse(LogStream.STDOUT, json.dumps({"type": "item.completed", "item": failed}))
    assert refused[0].kind is EventKind.ERROR and refused[0].text.endswith("server gone")
    assert run.progress.snapshot()["tool_calls"] == {"mcp__docs__lookup": 1}


def test_a_named_pipe_in_place_of_claudes_mcp_file_is_replaced(home: Path) -> None:
    """A resumed home is the agent's: a FIFO there must not block the worker's loop."""
    agent = ClaudeAgent("claude", mcp_servers=SERVERS)
    agent.configure(home, {})
    written = home / "claude-mcp.json"
    written.unlink()
    os.mkfifo(written)
    agent.configure(home, {})
    assert private(written) and json.loads(written.read_text())["mcpServers"]["docs"]

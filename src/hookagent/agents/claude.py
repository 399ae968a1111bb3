"""The Claude Code adapter: ``claude -p --output-format stream-json`` events to log lines."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hookagent.agents.base import AgentLine, AgentOutcome, JsonLinesRun, objects
from hookagent.agents.home import start_home, write_private
from hookagent.agents.mcp import CLAUDE_MCP_FILE, claude_config, claude_tools
from hookagent.agents.progress import Progress, finite
from hookagent.agents.quota import QUOTA_STATUSES, QuotaHit, quota_in, seconds
from hookagent.agents.text import short
from hookagent.models import EventKind, LogStream, Phase
from hookagent.policy import McpServer

# Tool inputs worth showing instead of the whole JSON, in order of preference.
_INPUT_HINTS = ("command", "file_path", "path", "pattern", "url", "query", "description")


class ClaudeAgent:
    """Builds the Claude Code command line for each phase."""

    name = "claude"
    env_names: tuple[str, ...] = ("ANTHROPIC_*", "CLAUDE_CODE_*", "CLAUDE_CONFIG_DIR")
    model_endpoint: tuple[str | None, str] | None = (
        "ANTHROPIC_BASE_URL",
        "https://api.anthropic.com",
    )

    def __init__(
        self,
        binary: str,
        *,
        model: str | None = None,
        max_turns: int | None = None,
        extra_args: list[str] | None = None,
        allowed_tools: list[str] | None = None,
        max_budget_usd: float | None = None,
        template: Path | None = None,
        mcp_servers: Mapping[str, McpServer] | None = None,
    ) -> None:
        self._binary = binary
        self.mcp_servers: Mapping[str, McpServer] = dict(mcp_servers or {})
        self._template = template
        self._budget = max_budget_usd
        self._allowed = allowed_tools or []
        self._model = model
        self._max_turns = max_turns
        self._extra = extra_args or []

    def argv(self, phase: Phase, *, resume: str | None = None) -> list[str]:
        """Headless, streaming JSON events; planning is read-only, execution may edit.

        Never ``--dangerously-skip-permissions``: execution gets ``acceptEdits`` and an
        explicit ``--allowedTools`` list instead. ``resume``: ``--resume <session_id>``. The
        policy's MCP servers are allowed in both phases: the operator chose them, and they
        run in the sandbox like the rest.
        """
        argv = [self._binary, "-p", "--output-format", "stream-json", "--verbose"]
        if resume:
            argv += ["--resume", resume]
        tools = claude_tools(self.mcp_servers)
        if phase is Phase.EXECUTE:
            argv += ["--permission-mode", "acceptEdits"]
            tools = [*self._allowed, *tools]
        else:
            argv += ["--permission-mode", "plan"]
        if tools:
            argv += ["--allowedTools", ",".join(tools)]
        if self._model:
            argv += ["--model", self._model]
        if self._max_turns:
            argv += ["--max-turns", str(self._max_turns)]
        if self._budget is not None:
            argv += ["--max-budget-usd", str(self._budget)]
        return argv + self._extra

    def configure(self, home: Path, env: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``HOOKAGENT_CLAUDE_CONFIG_DIR`` as ``CLAUDE_CONFIG_DIR``, when set.

        Else nothing: the CLI is configured by its environment. The MCP servers go to a
        file of their own, which ``config_argv`` names.
        """
        variables: dict[str, str] = {}
        if self.mcp_servers:
            config = home / CLAUDE_MCP_FILE
            # A resumed run keeps its home, which the agent could write: ours is made anew.
            write_private(config, claude_config(self.mcp_servers))
            # Headless, the CLI otherwise sends its first request while the servers still
            # start: their tools would be missing from the first turn.
            variables["MCP_CONNECTION_NONBLOCKING"] = "false"
        if self._template is None:
            return variables
        config = home / "claude"
        start_home(config, self._template, setting="HOOKAGENT_CLAUDE_CONFIG_DIR")
        return variables | {"CLAUDE_CONFIG_DIR": str(config)}

    def config_argv(self, home: Path) -> list[str]:
        """``--strict-mcp-config``, and ``--mcp-config`` naming the policy's servers' file.

        Strict always: MCP servers come from the policy only, never from the clone's
        ``.mcp.json``, which the CLI would otherwise start (a stranger's command) headless.
        """
        if not self.mcp_servers:
            return ["--strict-mcp-config"]
        return ["--strict-mcp-config", "--mcp-config", str(home / CLAUDE_MCP_FILE)]

    def start(self) -> ClaudeRun:
        """A fresh run parser."""
        return ClaudeRun()


class ClaudeRun(JsonLinesRun):
    """Parses stream-json events, remembering the plan, the result and the run's stats."""

    def __init__(self) -> None:
        self.exit_plan: str | None = None
        self.result_event: dict[str, Any] | None = None
        self.session_id: str | None = None
        self.progress = Progress()
        # The wait the API asked for before the CLI's last retry, or the reset time of a
        # rejected rate limit: the quota wait, should the run end on it.
        self.retry_after_s: float | None = None

    def finish(self, exit_code: int | None) -> AgentOutcome:
        """Judge the run by the ``result`` event (``is_error`` wins over ``subtype``)."""
        result = self.result_event
        if result is None:
            reason = "exited without a result event"
            if exit_code != 0:
                reason = f"exit code {exit_code}, no result event"
            return AgentOutcome(ok=False, error=f"claude {reason}")
        stats = _stats(result)
        text = result.get("result") if isinstance(result.get("result"), str) else None
        plan = self.exit_plan or _denied_plan(result) or text
        if result.get("is_error") or result.get("subtype") != "success":
            detail = text or result.get("subtype") or "is_error"
            return AgentOutcome(
                ok=False,
                plan=plan,
                result=text,
                error=f"claude: {detail}",
                stats=stats,
                quota=self._quota(result, str(detail)),
            )
        if exit_code != 0:
            return AgentOutcome(
                ok=False, plan=plan, result=text, error=f"claude exit code {exit_code}", stats=stats
            )
        return AgentOutcome(ok=True, plan=plan, result=text, stats=stats)

    def describe(self, event: dict[str, Any]) -> list[AgentLine]:
        """Assistant blocks, tool results and the final result as readable lines."""
        kind = event.get("type")
        if isinstance(event.get("session_id"), str):
            self.session_id = event["session_id"]
        if kind == "system":
            if event.get("subtype") == "api_retry" and event.get("error_status") in QUOTA_STATUSES:
                self.retry_after_s = seconds(event.get("retry_delay_ms"), 1000)
            return [_line(EventKind.RAW, _system_text(event))]
        if kind == "rate_limit_event":
            return [_line(EventKind.RAW, self._rate_limit(event))]
        if kind == "assistant":
            self.progress.turns += 1
            message = event.get("message")
            self.progress.usage(message.get("usage") if isinstance(message, dict) else None)
            return [self._block(block) for block in _content(event)]
        if kind == "user":
            return [_tool_result(b) for b in _content(event) if b.get("type") == "tool_result"]
        if kind == "result":
            self.result_event = event
            cost = finite(event.get("total_cost_usd"))
            if cost is not None:
                self.progress.cost_usd = cost
            return [
                _line(
                    EventKind.ERROR if event.get("is_error") else EventKind.RESULT,
                    _result_text(event),
                )
            ]
        return []

    def _quota(self, result: dict[str, Any], detail: str) -> QuotaHit | None:
        """A quota hit when the failed result carries a 429/529 or says so in its text."""
        status = result.get("api_error_status")
        hit = quota_in(detail, status=status if isinstance(status, int) else None)
        if hit is None or hit.retry_after_s is not None:
            return hit
        return QuotaHit(hit.reason, self.retry_after_s)

    def _rate_limit(self, event: dict[str, Any]) -> str:
        """Remember when a rejected limit resets (``resetsAt``, epoch seconds)."""
        info = event.get("rate_limit_info")
        info = info if isinstance(info, dict) else {}
        resets = finite(info.get("resetsAt"))
        if info.get("status") == "rejected" and resets is not None:
            self.retry_after_s = seconds(resets - time.time())
        return f"rate limit {info.get('status', '?')} ({info.get('rateLimitType', 'unknown')})"

    def _block(self, block: dict[str, Any]) -> AgentLine:
        btype = block.get("type")
        if btype == "text":
            return _line(EventKind.TEXT, str(block.get("text", "")))
        if btype == "thinking":
            return _line(EventKind.THINKING, f"thinking: {block.get('thinking', '')}")
        if btype == "tool_use":
            name = str(block.get("name", "tool"))
            raw_input = block.get("input")
            tool_input: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
            self.progress.tool_call(name, tool_input)
            if name == "ExitPlanMode" and isinstance(tool_input.get("plan"), str):
                self.exit_plan = tool_input["plan"]
            return _line(EventKind.TOOL_USE, f"{name}: {_summarise_input(tool_input)}")
        return _line(EventKind.RAW, f"{btype} block")


def _line(kind: EventKind, text: str) -> AgentLine:
    return AgentLine(LogStream.STDOUT, text, kind)


def _content(event: dict[str, Any]) -> list[dict[str, Any]]:
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return objects(content)


def _system_text(event: dict[str, Any]) -> str:
    if event.get("subtype") == "init":
        tools = event.get("tools")
        count = len(tools) if isinstance(tools, list) else 0
        return (
            f"session {event.get('session_id')} started: model {event.get('model')}, "
            f"permission mode {event.get('permissionMode')}, {count} tools"
        )
    return f"system: {event.get('subtype', '')}"


def _summarise_input(tool_input: dict[str, Any]) -> str:
    for hint in _INPUT_HINTS:
        value = tool_input.get(hint)
        if isinstance(value, str) and value:
            return short(value)
    return short(json.dumps(tool_input, ensure_ascii=False))


def _tool_result(block: dict[str, Any]) -> AgentLine:
    content = block.get("content")
    if isinstance(content, list):
        content = "\n".join(
            str(c.get("text", ""))
            for c in content
            if isinstance(c, dict) and c.get("type") == "text"
        )
    label = "tool error" if block.get("is_error") else "tool result"
    kind = EventKind.ERROR if block.get("is_error") else EventKind.TOOL_RESULT
    return _line(kind, f"{label}: {short(str(content or ''))}")


def _result_text(event: dict[str, Any]) -> str:
    cost = finite(event.get("total_cost_usd"))
    parts = [str(event.get("subtype", "")), f"{event.get('num_turns', '?')} turns"]
    if cost is not None:
        parts.append(f"${cost:.4f}")
    if isinstance(event.get("duration_ms"), int):
        parts.append(f"{event['duration_ms']} ms")
    if event.get("is_error"):
        parts.append("is_error")
    return f"result ({', '.join(parts)}): {short(str(event.get('result', '')))}"


def _denied_plan(result: dict[str, Any]) -> str | None:
    for denial in objects(result.get("permission_denials")):
        tool_input = denial.get("tool_input") if isinstance(denial, dict) else None
        if isinstance(tool_input, dict) and isinstance(tool_input.get("plan"), str):
            plan: str = tool_input["plan"]
            return plan
    return None


def _stats(result: dict[str, Any]) -> dict[str, str | int | float]:
    stats: dict[str, str | int | float] = {}
    for name, kind in (
        ("session_id", str),
        ("num_turns", int),
        ("total_cost_usd", float),
        ("duration_ms", int),
    ):
        value = finite(result.get(name)) if kind is float else result.get(name)
        if isinstance(value, kind | int) and not isinstance(value, bool):
            stats[name] = value
    return stats

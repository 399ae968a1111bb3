"""The OpenAI Codex CLI adapter: ``codex exec --json`` JSONL events to log lines."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hookagent.agents.base import AgentLine, AgentOutcome, JsonLinesRun, ModelCli, objects
from hookagent.agents.home import start_home, write_private
from hookagent.agents.mcp import codex_config
from hookagent.agents.progress import Progress
from hookagent.agents.quota import quota_in
from hookagent.agents.text import short
from hookagent.errors import AgentError
from hookagent.models import EventKind, LogStream, Phase
from hookagent.policy import McpServer

# The provider hookagent declares in the run's config.toml: the API at the configured URL,
# its key read from OPENAI_API_KEY (Codex ignores OPENAI_BASE_URL).
PROVIDER = "hookagent"
OPENAI_API_URL = "https://api.openai.com/v1"
# What a template's config.toml may not set: hookagent decides where the model is.
CONTROLLED_KEYS = ("model_provider", "profile")


class CodexAgent(ModelCli):
    """``codex exec --json -``: read-only sandbox to plan, workspace-write to execute.

    Inside hookagent's own sandbox (``outer_sandbox``) Codex's is off: bwrap confines it
    already, and Codex's nested sandbox cannot set itself up there.
    """

    name = "codex"
    env_names: tuple[str, ...] = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_*")
    model_endpoint: tuple[str | None, str] | None = (None, "https://api.openai.com")

    def __init__(
        self,
        binary: str,
        *,
        model: str | None = None,
        extra_args: list[str] | None = None,
        base_url: str = OPENAI_API_URL,
        template: Path | None = None,
        outer_sandbox: bool = False,
        mcp_servers: Mapping[str, McpServer] | None = None,
    ) -> None:
        super().__init__(binary, model=model, extra_args=extra_args, mcp_servers=mcp_servers)
        self._base_url = base_url
        self._template = template
        self._outer_sandbox = outer_sandbox
        # Codex ignores OPENAI_BASE_URL: its endpoint is the configured one, always.
        self.model_endpoint = (None, base_url)

    def configure(self, home: Path, env: Mapping[str, str]) -> dict[str, str]:
        """A fresh ``CODEX_HOME`` whose ``config.toml`` names the API (and a private TMPDIR).

        Started from ``HOOKAGENT_CODEX_HOME`` when set, else empty: never the worker user's
        ``~/.codex``, so its logins, history and settings stay out of the run. The temporary
        directory must not contain ``CODEX_HOME``, or Codex refuses to set up the helper its
        own sandbox runs commands with.
        """
        codex_home, tmp = home / "codex", home / "tmp"
        start_home(codex_home, self._template, setting="HOOKAGENT_CODEX_HOME")
        tmp.mkdir(mode=0o700, exist_ok=True)
        config = codex_home / "config.toml"
        ours = provider_config(self._base_url)
        # Read from the template, never from the home: a resumed run's home is the agent's.
        template = self._template / "config.toml" if self._template is not None else None
        if template is not None and template.is_file():
            ours = _over_template(template.read_text(), ours)
        if self.mcp_servers:
            # Tables last: after them no top-level key could be written.
            ours = f"{ours.rstrip()}\n\n{codex_config(self.mcp_servers)}"
            _parsed(ours)
        write_private(config, ours)
        return {"CODEX_HOME": str(codex_home), "TMPDIR": str(tmp)}

    def argv(self, phase: Phase, *, resume: str | None = None) -> list[str]:
        """The prompt is read from stdin (the trailing ``-``); ``resume``: ``resume <id>``."""
        if self._outer_sandbox:
            sandbox = "danger-full-access"
        else:
            sandbox = "workspace-write" if phase is Phase.EXECUTE else "read-only"
        argv = [self._binary, "exec", "--json", "--sandbox", sandbox, "--skip-git-repo-check"]
        if self._model:
            argv += ["--model", self._model]
        resuming = ["resume", resume] if resume else []
        return [*argv, *self._extra, *resuming, "-"]

    def start(self) -> CodexRun:
        """A fresh run parser."""
        return CodexRun()


def provider_config(base_url: str) -> str:
    """``config.toml`` selecting a Responses API provider at ``base_url``."""
    # JSON strings are TOML basic strings (same quotes and escapes).
    return (
        "# Written by hookagent for one run.\n"
        f"model_provider = {json.dumps(PROVIDER)}\n\n"
        f"[model_providers.{PROVIDER}]\n"
        f"name = {json.dumps(PROVIDER)}\n"
        f"base_url = {json.dumps(base_url)}\n"
        'env_key = "OPENAI_API_KEY"\n'
        'wire_api = "responses"\n'
    )


def _over_template(template: str, ours: str) -> str:
    """The template's ``config.toml`` with our provider added; refused if it sets one."""
    try:
        parsed = tomllib.loads(template)
    except tomllib.TOMLDecodeError as exc:
        raise AgentError(f"HOOKAGENT_CODEX_HOME: config.toml is not TOML: {exc}") from None
    providers = parsed.get("model_providers")
    taken = [key for key in CONTROLLED_KEYS if key in parsed]
    if isinstance(providers, dict) and PROVIDER in providers:
        taken.append(f"model_providers.{PROVIDER}")
    if taken:
        raise AgentError(
            f"HOOKAGENT_CODEX_HOME: config.toml sets {', '.join(taken)}, which hookagent controls"
        )
    # Our top-level key first (before any table), our table last.
    head, _, table = ours.partition("\n\n")
    merged = f"{head}\n\n{template.rstrip()}\n\n{table}"
    try:
        # An inline ``model_providers = {...}`` cannot take our table: refused, not half-read.
        tomllib.loads(merged)
    except tomllib.TOMLDecodeError as exc:
        raise AgentError(f"HOOKAGENT_CODEX_HOME: config.toml cannot take ours: {exc}") from None
    return merged


def _parsed(text: str) -> None:
    """Refuse a config.toml that does not parse (a template's table named like a server)."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AgentError(f"codex config.toml cannot take the MCP servers: {exc}") from None


class CodexRun(JsonLinesRun):
    """Parses thread/turn/item events; the plan is the last agent message."""

    def __init__(self) -> None:
        self.progress = Progress()
        self.thread_id: str | None = None
        self.last_message: str | None = None
        self.failure: str | None = None
        # A top-level ``error`` is a notice (Codex prints "Reconnecting... 1/5" and
        # retries); it fails the run only when no turn completes, as its reason.
        self.last_error: str | None = None
        self.completed = False

    def describe(self, event: dict[str, Any]) -> list[AgentLine]:
        """One readable line per event worth reading."""
        described = self._describe(event)
        if described is None:
            return []
        return [AgentLine(LogStream.STDOUT, described[1], described[0])]

    def finish(self, exit_code: int | None) -> AgentOutcome:
        """Success needs ``turn.completed``, no ``turn.failed`` and exit code 0."""
        stats: dict[str, str | int | float] = {"num_turns": self.progress.turns}
        if self.thread_id:
            stats["session_id"] = self.thread_id
        if self.failure or not self.completed or exit_code != 0:
            error = (
                self.failure or self.last_error or f"codex exit code {exit_code}, no turn.completed"
            )
            # "exceeded retry limit, last status: 429 Too Many Requests", "You've hit your
            # usage limit": the model's quota, not the task's fault.
            return AgentOutcome(
                ok=False,
                plan=self.last_message,
                error=error,
                stats=stats,
                quota=quota_in(error) if not self.completed else None,
            )
        return AgentOutcome(ok=True, plan=self.last_message, result=self.last_message, stats=stats)

    def _describe(self, event: dict[str, Any]) -> tuple[EventKind, str] | None:
        kind = event.get("type")
        if kind == "thread.started":
            self.thread_id = str(event.get("thread_id", ""))
            return EventKind.RAW, f"thread {self.thread_id} started"
        if kind == "turn.started":
            self.progress.turns += 1
            return EventKind.RAW, "turn started"
        if kind == "turn.completed":
            self.completed = True
            self.progress.usage(event.get("usage"))
            raw_usage = event.get("usage")
            usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
            tokens = f"{usage.get('input_tokens', '?')} in, {usage.get('output_tokens', '?')} out"
            return EventKind.RESULT, f"turn completed ({tokens})"
        if kind == "turn.failed":
            nested = event.get("error")
            error: dict[str, Any] = nested if isinstance(nested, dict) else event
            self.failure = f"codex: {error.get('message', 'failed')}"
            return EventKind.ERROR, self.failure
        if kind == "error":
            self.last_error = f"codex: {event.get('message', 'error')}"
            return EventKind.ERROR, self.last_error
        item = event.get("item")
        if kind in ("item.started", "item.updated", "item.completed") and isinstance(item, dict):
            return self._item(item, done=kind == "item.completed")
        return None

    def _item(self, item: dict[str, Any], *, done: bool) -> tuple[EventKind, str] | None:
        itype = item.get("type") or item.get("item_type")
        if itype == "agent_message" and done:
            self.last_message = str(item.get("text", ""))
            return EventKind.TEXT, self.last_message
        if itype == "reasoning" and done:
            return EventKind.THINKING, f"thinking: {short(str(item.get('text', '')))}"
        if itype == "command_execution":
            command = str(item.get("command", ""))
            if not done:
                self.progress.tool_call("command", {})
                return EventKind.TOOL_USE, f"Bash: {command}"
            failed = item.get("exit_code") not in (0, None)
            output = short(str(item.get("aggregated_output", "")))
            label = f"tool error (exit {item.get('exit_code')})" if failed else "tool result"
            return (EventKind.ERROR if failed else EventKind.TOOL_RESULT), f"{label}: {output}"
        if itype == "mcp_tool_call":
            return self._mcp_call(item, done=done)
        if itype == "file_change" and done:
            changes = objects(item.get("changes"))
            for change in changes:
                self.progress.tool_call("file_change", {"path": str(change.get("path", ""))})
            listed = ", ".join(f"{c.get('kind', 'change')} {c.get('path', '')}" for c in changes)
            return EventKind.TOOL_USE, f"Edit: {listed}"
        if itype == "todo_list":
            todos = objects(item.get("items"))
            self.progress.todos_total = len(todos)
            self.progress.todos_done = sum(1 for t in todos if t.get("completed"))
            return (
                EventKind.TEXT,
                f"todo list: {self.progress.todos_done}/{self.progress.todos_total} done",
            )
        if done:
            return EventKind.RAW, f"{itype} item"
        return None

    def _mcp_call(self, item: dict[str, Any], *, done: bool) -> tuple[EventKind, str] | None:
        """A call of an MCP server's tool, named as Claude Code names it: mcp__server__tool."""
        name = f"mcp__{item.get('server', '?')}__{item.get('tool', '?')}"
        if not done:
            arguments = item.get("arguments")
            self.progress.tool_call(name, arguments if isinstance(arguments, dict) else {})
            return EventKind.TOOL_USE, f"{name}: {short(json.dumps(arguments))}"
        error = item.get("error")
        if item.get("status") == "failed" or error:
            detail = error.get("message") if isinstance(error, dict) else error
            return EventKind.ERROR, f"tool error: {name}: {short(str(detail or 'failed'))}"
        result = item.get("result")
        content = result.get("content") if isinstance(result, dict) else None
        texts = [str(c.get("text", "")) for c in objects(content) if c.get("type") == "text"]
        return EventKind.TOOL_RESULT, f"tool result: {name}: {short(' '.join(texts))}"

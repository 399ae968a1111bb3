"""The Gemini CLI adapter: ``gemini -o stream-json`` events to log lines."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hookagent.agents.base import AgentLine, AgentOutcome, JsonLinesRun, ModelCli
from hookagent.agents.home import start_home, write_private
from hookagent.agents.mcp import gemini_config
from hookagent.agents.progress import Progress
from hookagent.agents.quota import quota_in
from hookagent.agents.text import short
from hookagent.errors import AgentError
from hookagent.models import EventKind, LogStream, Phase
from hookagent.policy import McpServer

# A fixed -p: the task's text goes to stdin, which the CLI appends to the prompt; it is
# never a command-line argument.
STDIN_PROMPT = "Follow the instructions given on standard input."
# The run's user settings: API-key auth (GEMINI_API_KEY; GOOGLE_GEMINI_BASE_URL, when set,
# names the endpoint), no usage statistics sent to Google, and no project ``.env`` files
# (walking up from the clone, the CLI would load the operator's own ``.env``).
USER_SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
    "advanced": {"ignoreLocalEnv": True},
}
# Trusted, the CLI loads the clone's ``.gemini/.env`` into its environment, but never over
# a variable already set: these are always set, so a repository cannot send the API key
# (or the conversation) to another endpoint or through its own proxy.
PINNED_ENV = {
    "GOOGLE_GEMINI_BASE_URL": "https://generativelanguage.googleapis.com",
    "HTTPS_PROXY": "",
    "https_proxy": "",
    "HTTP_PROXY": "",
    "http_proxy": "",
    "NODE_TLS_REJECT_UNAUTHORIZED": "1",
}


class GeminiAgent(ModelCli):
    """``gemini -p … -o stream-json``: default approvals to plan, auto_edit to execute."""

    name = "gemini"
    env_names: tuple[str, ...] = ("GEMINI_*", "GOOGLE_*")
    model_endpoint: tuple[str | None, str] | None = (
        "GOOGLE_GEMINI_BASE_URL",
        "https://generativelanguage.googleapis.com",
    )

    def __init__(
        self,
        binary: str,
        *,
        model: str | None = None,
        extra_args: list[str] | None = None,
        template: Path | None = None,
        mcp_servers: Mapping[str, McpServer] | None = None,
    ) -> None:
        super().__init__(binary, model=model, extra_args=extra_args, mcp_servers=mcp_servers)
        self._template = template

    def argv(self, phase: Phase, *, resume: str | None = None) -> list[str]:
        """The command line; approvals depend on the phase.

        ``--skip-trust``: every task runs in a fresh clone, which the CLI has never been
        told to trust, and headless it exits 55 in an untrusted directory. ``resume``:
        ``--resume <session id>``, a session of this task's ``GEMINI_CLI_HOME``.
        """
        mode = "auto_edit" if phase is Phase.EXECUTE else "default"
        argv = [self._binary, "-p", STDIN_PROMPT, "-o", "stream-json", "--approval-mode", mode]
        argv.append("--skip-trust")
        if resume:
            argv += ["--resume", resume]
        if self._model:
            argv += ["--model", self._model]
        return argv + self._extra

    def configure(self, home: Path, env: Mapping[str, str]) -> dict[str, str]:
        """A fresh ``GEMINI_CLI_HOME`` whose ``.gemini/settings.json`` selects API-key auth.

        Started from ``HOOKAGENT_GEMINI_HOME`` when set (its ``.gemini/settings.json`` kept,
        ours set over it), else empty: never the worker user's ``~/.gemini``, so its logins,
        history and settings stay out. The endpoint and proxy variables the operator did not
        set are pinned to defaults.
        """
        gemini_home = home / "gemini"
        start_home(gemini_home, self._template, setting="HOOKAGENT_GEMINI_HOME")
        user = gemini_home / ".gemini"
        if user.is_symlink():
            user.unlink()
        user.mkdir(mode=0o700, exist_ok=True)
        settings = user / "settings.json"
        # Read from the template, never from the home: a resumed run's home is the agent's.
        template = (
            self._template / ".gemini" / "settings.json" if self._template is not None else None
        )
        base = _template_settings(template) if template is not None and template.is_file() else {}
        ours: dict[str, Any] = dict(USER_SETTINGS)
        if self.mcp_servers:
            ours["mcpServers"] = gemini_config(self.mcp_servers)
        write_private(settings, json.dumps(_merged(base, ours)))
        pinned = {name: value for name, value in PINNED_ENV.items() if name not in env}
        return {**pinned, "GEMINI_CLI_HOME": str(gemini_home)}

    def start(self) -> GeminiRun:
        """A fresh run parser."""
        return GeminiRun()


def _template_settings(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except ValueError as exc:
        raise AgentError(
            f"HOOKAGENT_GEMINI_HOME: .gemini/settings.json is not JSON: {exc}"
        ) from None
    if not isinstance(loaded, dict):
        raise AgentError("HOOKAGENT_GEMINI_HOME: its settings.json is not a JSON object")
    return loaded


def _merged(base: dict[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``ours`` set over it, key by key: ours wins wherever both set one."""
    merged = dict(base)
    for key, value in ours.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, dict):
            merged[key] = _merged(below, value)
        else:
            merged[key] = value
    return merged


class GeminiRun(JsonLinesRun):
    """Parses init/message/tool_use/tool_result/error/result; the plan is the last message.

    The CLI streams each assistant message as ``delta`` pieces; a message ends at the next
    event of another kind (a tool call). The plan is the last message, as with the other
    agents: the narration before tool calls ("Looking at the repository first.") is not.
    """

    def __init__(self) -> None:
        self.progress = Progress()
        self.session_id: str | None = None
        self._messages: list[list[str]] = []
        self._in_message = False
        # tool_id -> "name: target", so a result says what it is the result of.
        self._calls: dict[str, str] = {}
        self.result: dict[str, Any] | None = None
        # The last ``error`` event's message: a run that ends without a result says why there.
        self.last_error = ""

    def describe(self, event: dict[str, Any]) -> list[AgentLine]:
        """One readable line per event worth reading."""
        described = self._describe(event)
        if described is None:
            return []
        return [AgentLine(LogStream.STDOUT, described[1], described[0])]

    def finish(self, exit_code: int | None) -> AgentOutcome:
        """Success is a ``result`` with status success and exit code 0."""
        last = "".join(self._messages[-1]) if self._messages else ""
        plan = last.strip() or None
        stats: dict[str, str | int | float] = {"num_turns": self.progress.turns}
        if self.session_id:
            stats["session_id"] = self.session_id
        result = self.result or {}
        run_stats = result.get("stats")
        duration = run_stats.get("duration_ms") if isinstance(run_stats, dict) else None
        if isinstance(duration, int) and not isinstance(duration, bool):  # "True" breaks Task
            stats["duration_ms"] = duration
        if result.get("status") != "success" or exit_code != 0:
            failure = result.get("error")
            reason = failure.get("message") if isinstance(failure, dict) else None
            error = (
                f"gemini: {reason}"
                if reason
                else (f"gemini exit code {exit_code}, status {result.get('status')}")
            )
            quota = quota_in(str(reason or self.last_error))
            return AgentOutcome(ok=False, plan=plan, error=error, stats=stats, quota=quota)
        return AgentOutcome(ok=True, plan=plan, result=plan, stats=stats)

    def _describe(self, event: dict[str, Any]) -> tuple[EventKind, str]:
        kind = event.get("type")
        assistant = kind == "message" and event.get("role") == "assistant"
        if not assistant:
            self._in_message = False
        if kind == "init":
            self.session_id = str(event.get("session_id", ""))
            return EventKind.RAW, f"session {self.session_id} started: model {event.get('model')}"
        if assistant:
            content = str(event.get("content", ""))
            if not (event.get("delta") and self._in_message):
                self.progress.turns += 1  # a delta continues the message before it
                self._messages.append([])
                self._in_message = True
            self._messages[-1].append(content)
            return EventKind.TEXT, content
        if kind == "message":
            return EventKind.RAW, f"{event.get('role', 'user')} message"
        if kind == "tool_use":
            name = str(event.get("tool_name", "tool"))
            raw = event.get("parameters")
            params: dict[str, Any] = raw if isinstance(raw, dict) else {}
            self.progress.tool_call(name, params)
            hints = ("command", "file_path", "path", "pattern")
            hint = next((str(params[k]) for k in hints if params.get(k)), "")
            call = f"{name}: {short(hint or json.dumps(params))}"
            self._calls[str(event.get("tool_id", ""))] = call
            return EventKind.TOOL_USE, call
        if kind == "tool_result":
            return self._tool_result(event)
        if kind == "error":
            self.last_error = str(event.get("message", ""))
            return EventKind.ERROR, f"{event.get('severity', 'error')}: {event.get('message', '')}"
        if kind == "result":
            self.result = event
            raw_stats = event.get("stats")
            stats: dict[str, Any] = raw_stats if isinstance(raw_stats, dict) else {}
            self.progress.usage(stats)
            tokens, ms = stats.get("total_tokens", "?"), stats.get("duration_ms", "?")
            return EventKind.RESULT, f"result ({event.get('status')}, {tokens} tokens, {ms} ms)"
        return EventKind.RAW, str(kind or "event")

    def _tool_result(self, event: dict[str, Any]) -> tuple[EventKind, str]:
        """The call it answers, and its output when the CLI shows one.

        The CLI sends only a string display as ``output``: a shell command's output, but
        nothing for ``write_file`` or ``replace`` (their display is a diff) and an empty
        string for ``read_file``.
        """
        failure = event.get("error")
        detail = failure.get("message", "") if isinstance(failure, dict) else ""
        output = str(event.get("output") or detail)
        call = self._calls.pop(str(event.get("tool_id", "")), "tool")
        shown = f"{call}: {short(output)}" if output.strip() else f"{call} (no output)"
        if event.get("status") == "success":
            return EventKind.TOOL_RESULT, f"tool result: {shown}"
        return EventKind.ERROR, f"tool error: {shown}"

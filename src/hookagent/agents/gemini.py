"""The Gemini CLI adapter: ``gemini -o stream-json`` events to log lines."""

from __future__ import annotations

import json
from typing import Any

from hookagent.agents.base import AgentLine, AgentOutcome, JsonLinesRun, ModelCli
from hookagent.agents.progress import Progress
from hookagent.agents.text import short
from hookagent.models import EventKind, LogStream, Phase

# A fixed -p: the task's text goes to stdin, which the CLI appends to the prompt; it is
# never a command-line argument.
STDIN_PROMPT = "Follow the instructions given on standard input."


class GeminiAgent(ModelCli):
    """``gemini -p … -o stream-json``: default approvals to plan, auto_edit to execute."""

    name = "gemini"
    env_names: tuple[str, ...] = ("GEMINI_*", "GOOGLE_*")
    model_endpoint: tuple[str, str] | None = (
        "GOOGLE_GEMINI_BASE_URL",
        "https://generativelanguage.googleapis.com",
    )

    def argv(self, phase: Phase) -> list[str]:
        """The command line; approvals depend on the phase."""
        mode = "auto_edit" if phase is Phase.EXECUTE else "default"
        argv = [self._binary, "-p", STDIN_PROMPT, "-o", "stream-json", "--approval-mode", mode]
        if self._model:
            argv += ["--model", self._model]
        return argv + self._extra

    def start(self) -> GeminiRun:
        """A fresh run parser."""
        return GeminiRun()


class GeminiRun(JsonLinesRun):
    """Parses init/message/tool_use/tool_result/error/result; the plan is the assistant's text."""

    def __init__(self) -> None:
        self.progress = Progress()
        self.session_id: str | None = None
        self._text: list[str] = []
        self.result: dict[str, Any] | None = None

    def describe(self, event: dict[str, Any]) -> list[AgentLine]:
        """One readable line per event worth reading."""
        described = self._describe(event)
        if described is None:
            return []
        return [AgentLine(LogStream.STDOUT, described[1], described[0])]

    def finish(self, exit_code: int | None) -> AgentOutcome:
        """Success is a ``result`` with status success and exit code 0."""
        plan = "".join(self._text).strip() or None
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
            return AgentOutcome(ok=False, plan=plan, error=error, stats=stats)
        return AgentOutcome(ok=True, plan=plan, result=plan, stats=stats)

    def _describe(self, event: dict[str, Any]) -> tuple[EventKind, str]:
        kind = event.get("type")
        if kind == "init":
            self.session_id = str(event.get("session_id", ""))
            return EventKind.RAW, f"session {self.session_id} started: model {event.get('model')}"
        if kind == "message" and event.get("role") == "assistant":
            content = str(event.get("content", ""))
            if not event.get("delta") or not self._text:
                self.progress.turns += 1  # a delta continues the message before it
            self._text.append(content)
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
            return EventKind.TOOL_USE, f"{name}: {short(hint or json.dumps(params))}"
        if kind == "tool_result":
            ok = event.get("status") == "success"
            failure = event.get("error")
            detail = failure.get("message", "") if isinstance(failure, dict) else ""
            output = short(str(event.get("output") or detail))
            if ok:
                return EventKind.TOOL_RESULT, f"tool result: {output}"
            return EventKind.ERROR, f"tool error: {output}"
        if kind == "error":
            return EventKind.ERROR, f"{event.get('severity', 'error')}: {event.get('message', '')}"
        if kind == "result":
            self.result = event
            raw_stats = event.get("stats")
            stats: dict[str, Any] = raw_stats if isinstance(raw_stats, dict) else {}
            self.progress.usage(stats)
            tokens, ms = stats.get("total_tokens", "?"), stats.get("duration_ms", "?")
            return EventKind.RESULT, f"result ({event.get('status')}, {tokens} tokens, {ms} ms)"
        return EventKind.RAW, str(kind or "event")

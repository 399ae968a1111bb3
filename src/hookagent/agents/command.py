"""The ``command`` adapter: any CLI that reads a prompt on stdin and prints text."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hookagent.agents.base import AgentLine, AgentOutcome, TextLines
from hookagent.agents.progress import Progress
from hookagent.agents.quota import quota_in
from hookagent.models import EventKind, LogStream, Phase
from hookagent.policy import McpServer

PLAN_MAX_CHARS = 256 * 1024


class CommandAgent:
    """Runs a fixed argv; its stdout is the plan."""

    name = "command"
    env_names: tuple[str, ...] = ()  # the operator lists what it needs: HOOKAGENT_AGENT_ENV
    model_endpoint: tuple[str | None, str] | None = None

    def __init__(self, argv: list[str]) -> None:
        if not argv:
            raise ValueError("HOOKAGENT_AGENT_COMMAND is empty; set the command to run")
        self._argv = argv
        self.mcp_servers: Mapping[str, McpServer] = {}

    def argv(self, phase: Phase, *, resume: str | None = None) -> list[str]:
        """The configured command, the same for every phase (it keeps no session)."""
        return list(self._argv)

    def configure(self, home: Path, env: Mapping[str, str]) -> dict[str, str]:
        """Nothing to write: the CLI is configured by its environment."""
        return {}

    def config_argv(self, home: Path) -> list[str]:
        """Nothing: no file is written."""
        return []

    def start(self) -> CommandRun:
        """A fresh run parser."""
        return CommandRun()


class CommandRun:
    """Keeps stdout (up to a cap) as the plan; every line is logged as text."""

    def __init__(self) -> None:
        self._out: list[str] = []
        self._size = 0
        # The last line the command printed on each stream: a failure's reason, as it said it.
        self._last: dict[LogStream, str] = {}
        self.progress = Progress()

    def parse(self, stream: LogStream, line: str) -> list[AgentLine]:
        """One log line per output line."""
        if stream is LogStream.STDOUT and self._size < PLAN_MAX_CHARS:
            self._out.append(line)
            self._size += len(line) + 1
        self._last[stream] = line
        return [AgentLine(stream, line, EventKind.TEXT if stream is LogStream.STDOUT else None)]

    def parse_lines(self, stream: LogStream, lines: list[str]) -> TextLines:
        """The batch as it is: one text line per output line, without a call per line."""
        if lines:
            self._last[stream] = lines[-1]
        if stream is not LogStream.STDOUT:
            return TextLines(stream, lines)
        if self._size < PLAN_MAX_CHARS:
            self._keep(lines)
        return TextLines(stream, lines, EventKind.TEXT)

    def _keep(self, lines: list[str]) -> None:
        """Add ``lines`` to the plan as ``parse`` would: each while the plan is under the cap."""
        size = sum(map(len, lines)) + len(lines)
        if self._size + size <= PLAN_MAX_CHARS:
            # Below the cap before every line of the batch: all of them are kept.
            self._out += lines
            self._size += size
            return
        for line in lines:
            if self._size >= PLAN_MAX_CHARS:
                break
            self._out.append(line)
            self._size += len(line) + 1

    def finish(self, exit_code: int | None) -> AgentOutcome:
        """Success is exit code 0; the plan is stdout."""
        plan = "\n".join(self._out).strip()[:PLAN_MAX_CHARS]
        if exit_code != 0:
            # A command that failed saying "429", "rate limit" or "usage limit" (and maybe
            # "retry after 30s") in its last line ran into its model's quota.
            last = self._last.get(LogStream.STDERR) or self._last.get(LogStream.STDOUT, "")
            return AgentOutcome(
                ok=False,
                plan=plan or None,
                error=f"exit code {exit_code}",
                quota=quota_in(last),
            )
        return AgentOutcome(ok=True, plan=plan, result=plan)

"""What every agent adapter provides: its command line and a parser for one run's output."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from hookagent.agents.progress import Progress
from hookagent.agents.quota import QuotaHit
from hookagent.models import EventKind, LogStream, Phase
from hookagent.policy import McpServer


class AgentLine(NamedTuple):
    """A readable log line made from agent output; ``raw`` is the original event as JSON."""

    stream: LogStream
    text: str
    kind: EventKind | None = None
    raw: str = ""


class TextLines(NamedTuple):
    """Output lines logged as they are: one stream and kind for all, no raw event."""

    stream: LogStream
    texts: list[str]
    kind: EventKind | None = None


# What an adapter makes of a batch of output lines: log lines, or the batch kept as text.
Parsed = list[AgentLine] | TextLines


@dataclass(slots=True)
class AgentOutcome:
    """What a finished run produced, as far as the adapter could tell."""

    ok: bool
    plan: str | None = None
    result: str | None = None
    error: str | None = None
    stats: dict[str, str | int | float] = field(default_factory=dict)
    # Set when the run ended on the model's quota: the task waits instead of failing.
    quota: QuotaHit | None = None


class AgentRun(Protocol):
    """Parses the output of one run and judges it at the end."""

    progress: Progress

    def parse(self, stream: LogStream, line: str) -> list[AgentLine]:
        """Turn one output line into zero or more log lines."""

    def parse_lines(self, stream: LogStream, lines: list[str]) -> Parsed:
        """Turn a batch of output lines into log lines, as ``parse`` does one by one."""

    def finish(self, exit_code: int | None) -> AgentOutcome:
        """The outcome, once the process has exited with ``exit_code``."""


class Agent(Protocol):
    """An agent CLI hookagent knows how to drive."""

    name: str
    # Environment names (``FOO_*``: a prefix) the CLI needs on top of the basics.
    env_names: tuple[str, ...]
    # Where the CLI finds its model: (the variable of its base URL or None when it reads
    # none, the URL when unset). The agent's egress proxy lets it through; None: nothing by
    # default (``command``).
    model_endpoint: tuple[str | None, str] | None
    # The repository's MCP servers (policy ``mcp_servers``), which ``configure`` writes.
    mcp_servers: Mapping[str, McpServer]

    def argv(self, phase: Phase, *, resume: str | None = None) -> list[str]:
        """The command line for ``phase``; the prompt goes on stdin, never here.

        ``resume``: the id of the CLI's session to continue (one parked on the quota).
        """

    def config_argv(self, home: Path) -> list[str]:
        """Arguments naming files ``configure`` wrote, with ``home`` where the CLI sees it."""

    def configure(self, home: Path, env: Mapping[str, str]) -> dict[str, str]:
        """Write the CLI's configuration for one run into ``home``; the variables to add.

        ``home`` is a fresh private directory outside the workspace, removed after the run
        (under bwrap bound read-write into the sandbox, the paths returned rewritten to it);
        ``env`` is the environment the CLI gets otherwise.
        """

    def start(self) -> AgentRun:
        """A fresh parser for one run."""


class JsonLinesRun(ABC):
    """Base of parsers for CLIs that print one JSON event per stdout line."""

    progress: Progress

    def parse(self, stream: LogStream, line: str) -> list[AgentLine]:
        """Readable lines for one event; stderr and non-JSON output are kept as they are."""
        if stream is not LogStream.STDOUT:
            return [AgentLine(stream, line)]
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            return [AgentLine(stream, line, EventKind.RAW)]
        lines = self.describe(event) or [
            AgentLine(stream, str(event.get("type", "event")), EventKind.RAW)
        ]
        # The raw event rides on the first line only, so it is stored once.
        return [lines[0]._replace(raw=line), *lines[1:]]

    def parse_lines(self, stream: LogStream, lines: list[str]) -> Parsed:
        """Every line's log lines, in order: events are parsed one by one."""
        if stream is not LogStream.STDOUT:
            return TextLines(stream, lines)
        parse = self.parse
        return [out for line in lines for out in parse(stream, line)]

    @abstractmethod
    def describe(self, event: dict[str, Any]) -> list[AgentLine]:
        """Readable stdout lines for one event (empty: keep it as a raw line)."""

    @abstractmethod
    def finish(self, exit_code: int | None) -> AgentOutcome:
        """The outcome, once the process has exited with ``exit_code``."""


def objects(value: Any) -> list[dict[str, Any]]:
    """The objects in ``value`` when it is a JSON array; empty for anything else."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# What a resumed session is told on stdin: the conversation it continues holds the task.
RESUME_PROMPT = (
    b"The model's quota ran out before you finished. Continue the task from where you "
    b"stopped, and end as the task asked.\n"
)


class ModelCli:
    """Common constructor of the CLI adapters that take a binary, a model and extra args."""

    def __init__(
        self,
        binary: str,
        *,
        model: str | None = None,
        extra_args: list[str] | None = None,
        mcp_servers: Mapping[str, McpServer] | None = None,
    ) -> None:
        self._binary = binary
        self._model = model
        self._extra = extra_args or []
        self.mcp_servers: Mapping[str, McpServer] = dict(mcp_servers or {})

    def config_argv(self, home: Path) -> list[str]:
        """Nothing: the CLI finds its configuration through the variables ``configure`` sets."""
        return []

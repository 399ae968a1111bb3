"""What every agent adapter provides: its command line and a parser for one run's output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from hookagent.agents.progress import Progress
from hookagent.models import EventKind, LogStream, Phase


class AgentLine(NamedTuple):
    """A readable log line made from agent output; ``raw`` is the original event as JSON."""

    stream: LogStream
    text: str
    kind: EventKind | None = None
    raw: str = ""


@dataclass(slots=True)
class AgentOutcome:
    """What a finished run produced, as far as the adapter could tell."""

    ok: bool
    plan: str | None = None
    result: str | None = None
    error: str | None = None
    stats: dict[str, str | int | float] = field(default_factory=dict)


class AgentRun(Protocol):
    """Parses the output of one run and judges it at the end."""

    progress: Progress

    def parse(self, stream: LogStream, line: str) -> list[AgentLine]:
        """Turn one output line into zero or more log lines."""

    def finish(self, exit_code: int | None) -> AgentOutcome:
        """The outcome, once the process has exited with ``exit_code``."""


class Agent(Protocol):
    """An agent CLI hookagent knows how to drive."""

    name: str

    def argv(self, phase: Phase) -> list[str]:
        """The command line for ``phase``; the prompt goes on stdin, never here."""

    def start(self) -> AgentRun:
        """A fresh parser for one run."""

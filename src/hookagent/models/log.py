"""The log line: where it came from, what it means, and a page of them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from hookagent.models.transitions import TaskStatus


class LogStream(StrEnum):
    """Which pipe (or hookagent itself) a log line came from."""

    STDOUT = "stdout"
    STDERR = "stderr"
    SYSTEM = "system"
    # The policy's ``test`` command, run in the sandbox after execution.
    TEST = "test"
    SETUP = "setup"  # the setup command's output, both pipes


class EventKind(StrEnum):
    """What an agent's output line means, when the adapter can tell."""

    TEXT = "text"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    THINKING = "thinking"
    RESULT = "result"
    ERROR = "error"
    RAW = "raw"
    STATUS = "status"


class LogEntry(BaseModel):
    """One stored log line; ``seq`` is its offset and the cursor of every reader."""

    seq: int
    timestamp: str
    stream: LogStream
    message: str
    attempt: int | None = None
    kind: EventKind | None = None
    status: TaskStatus | None = None
    raw: Any = None


class LogsPage(BaseModel):
    """The seed's ``GET /tasks/{id}/logs`` response."""

    task_id: str
    logs: list[LogEntry]
    offset: int
    limit: int
    total: int
    has_more: bool
    next_offset: int

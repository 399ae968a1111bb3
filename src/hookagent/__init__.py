"""hookagent: webhooks in, coding-agent tasks out, every log line live in Redis."""

from __future__ import annotations

from hookagent.models import LogEntry, Task, TaskStatus
from hookagent.settings import Settings, get_settings

__all__ = ["LogEntry", "Settings", "Task", "TaskStatus", "get_settings"]
__version__ = "0.1.0"

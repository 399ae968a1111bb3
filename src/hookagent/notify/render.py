"""Texts every channel shows: status labels, links, cost, duration, the last log lines."""

from __future__ import annotations

from datetime import datetime

from hookagent.models import Task, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store

FAILURE_LINES = 20

STATUS_LABELS: dict[TaskStatus, tuple[str, str]] = {
    TaskStatus.QUEUED: ("⏳", "Queued"),
    TaskStatus.DISCOVERING: ("🔎", "Planning"),
    TaskStatus.PENDING_APPROVAL: ("📝", "Plan ready, waiting for approval"),
    TaskStatus.APPROVED: ("👍", "Approved"),
    TaskStatus.EXECUTING: ("⚙️", "Executing"),
    TaskStatus.COMPLETED: ("✅", "Completed"),
    TaskStatus.FAILED: ("❌", "Failed"),
    TaskStatus.REJECTED: ("🚫", "Rejected"),
    TaskStatus.CANCELLED: ("⏹️", "Cancelled"),
    TaskStatus.REVISING: ("🔁", "Revising the change"),
    TaskStatus.MERGED: ("🟣", "Merged"),
    TaskStatus.CLOSED: ("🚪", "Closed unmerged"),
}


def status_text(status: TaskStatus) -> str:
    """``✅ Completed`` and so on."""
    icon, label = STATUS_LABELS[status]
    return f"{icon} {label}"


def task_url(settings: Settings, task_id: str) -> str:
    """The task's page in hookagent's web UI."""
    return f"{settings.public_url.rstrip('/')}/ui/tasks/{task_id}"


def trim(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters, and whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[: limit - 1].rstrip() + "…", True


def cost(task: Task) -> str:
    """The agent's reported cost, or ``n/a``."""
    return f"${task.total_cost_usd:.4f}" if task.total_cost_usd is not None else "n/a"


def duration(task: Task) -> str:
    """From creation to the last status change, as ``1h 2m 3s``."""
    try:
        start = datetime.fromisoformat(task.created_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(task.updated_at.replace("Z", "+00:00"))
    except ValueError:
        return "n/a"
    seconds = max(0, int((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    if hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


async def last_lines(store: Store, task_id: str, count: int = FAILURE_LINES) -> list[str]:
    """The last ``count`` messages of the task's log."""
    total = await store.logs.total(task_id)
    entries, _ = await store.logs.read(task_id, offset=max(0, total - count), limit=count)
    return [entry.message for entry in entries]

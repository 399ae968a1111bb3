"""The change requests tasks opened, read from the status indexes for ``GET /stats``.

Computed at read time from the tasks hookagent still holds, not kept as counters: the
status indexes already name every task that delivered a change (``completed``,
``revising``, ``merged``, ``closed``), and a few fields of each hash say the rest. One
ZRANGE per index and one HMGET per task, in two pipelined round trips, so the numbers
can never drift from the tasks, medians are exact, and they cover the task retention
window (``HOOKAGENT_TASK_TTL``). ``/metrics`` keeps the all-time counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookagent.models import TaskStatus
from hookagent.store.client import Client
from hookagent.store.keys import Keys

# The statuses a task with a delivered change request can be in.
DELIVERED = (TaskStatus.COMPLETED, TaskStatus.REVISING, TaskStatus.MERGED, TaskStatus.CLOSED)
_FIELDS = (
    "status", "repository", "source", "agent", "pr_number", "pr_opened_at", "pr_ended_at",
    "review_rounds", "ci_fixes",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One change request a task opened: where from, how it ended (or not yet), its rounds."""

    task_id: str
    status: TaskStatus
    repository: str
    source: str
    agent: str
    opened_at: str | None
    ended_at: str | None
    review_rounds: int
    ci_fixes: int


class ChangeRequests:
    """Reads the change requests of the tasks in the delivered statuses."""

    def __init__(self, redis: Client, keys: Keys) -> None:
        self._redis: Any = redis
        self._keys = keys

    async def all(self) -> list[ChangeRecord]:
        """Every task that opened a change request and still exists."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for status in DELIVERED:
                pipe.zrange(self._keys.tasks_by_status(status), 0, -1)
            indexed: list[list[str]] = await pipe.execute()
        ids = [tid for members in indexed for tid in members]
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.hmget(self._keys.task(tid), _FIELDS)
            rows: list[list[str | None]] = await pipe.execute()
        records = []
        for tid, row in zip(ids, rows, strict=True):
            record = _record(tid, dict(zip(_FIELDS, row, strict=True)))
            if record is not None:
                records.append(record)
        return records


def _record(task_id: str, row: dict[str, str | None]) -> ChangeRecord | None:
    """The record of one task's fields; None for an expired task or one without a request."""
    if not row["status"] or not row["pr_number"]:
        return None
    return ChangeRecord(
        task_id=task_id,
        status=TaskStatus(row["status"]),
        repository=row["repository"] or "",
        source=row["source"] or "",
        agent=row["agent"] or "",
        opened_at=row["pr_opened_at"] or None,
        ended_at=row["pr_ended_at"] or None,
        review_rounds=int(row["review_rounds"] or 0),
        ci_fixes=int(row["ci_fixes"] or 0),
    )

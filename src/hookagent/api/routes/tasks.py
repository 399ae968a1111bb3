"""``/tasks``: list, details, status and paginated logs, in the seed's shapes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hookagent.api.deps import StoreDep
from hookagent.errors import PayloadError
from hookagent.models import (
    LogsPage,
    StatusMetadata,
    TaskDetail,
    TaskList,
    TaskStatus,
    TaskStatusResponse,
    TaskSummary,
)

router = APIRouter(prefix="/tasks", tags=["tasks"])

MAX_PAGE = 10_000


@router.get("/")
@router.get("", include_in_schema=False)
async def list_tasks(
    store: StoreDep,
    status: TaskStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> TaskList:
    """Newest first, optionally only one status."""
    tasks = await store.tasks.list(status=status, limit=limit)
    rows = [TaskSummary.model_validate(t.model_dump()) for t in tasks]
    return TaskList(tasks=rows, count=len(rows))


@router.get("/{task_id}")
async def get_task(task_id: str, store: StoreDep) -> TaskDetail:
    """Everything about the task, with its status history."""
    task = await store.tasks.get(task_id)
    history = await store.tasks.history(task_id)
    plans = await store.tasks.plans(task_id)
    total = await store.logs.total(task_id)
    return TaskDetail(**task.model_dump(), history=history, plans=plans, log_total=total)


@router.get("/{task_id}/status")
async def get_status(task_id: str, store: StoreDep) -> TaskStatusResponse:
    """The status and the seed's ``metadata`` object."""
    task = await store.tasks.get(task_id)
    metadata = StatusMetadata(
        status=task.status,
        updated_at=task.updated_at,
        plan=task.plan,
        queue=task.queue,
        attempt=task.attempt,
        error=task.error,
    )
    return TaskStatusResponse(task_id=task.task_id, status=task.status, metadata=metadata)


@router.get("/{task_id}/logs")
async def get_logs(
    task_id: str,
    store: StoreDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=-1, le=MAX_PAGE, description="-1 for all")] = 100,
    follow: bool = False,
) -> LogsPage:
    """Log entries from ``offset``; ``seq`` of each entry is its offset."""
    if limit == 0:
        raise PayloadError("limit must be -1 (all) or between 1 and 10000")
    entries, total = await store.logs.read(task_id, offset=offset, limit=limit)
    return LogsPage(
        task_id=task_id,
        logs=entries,
        offset=offset,
        limit=limit,
        total=total,
        has_more=offset + len(entries) < total,
    )

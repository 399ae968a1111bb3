"""``GET /workers``: the worker loops that sent a heartbeat recently, and what they run."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from hookagent.api.deps import SettingsDep, StoreDep
from hookagent.models import utc_iso

router = APIRouter(prefix="/workers", tags=["workers"])


class WorkerOut(BaseModel):
    """One live worker loop; ``task_id`` and ``phase`` are set while it runs a job."""

    name: str
    host: str
    pid: int
    version: str
    started_at: str
    last_seen: str
    task_id: str | None
    phase: str | None


class WorkerList(BaseModel):
    """The worker loops heard from within ``HOOKAGENT_READY_WORKER_AGE`` seconds."""

    workers: list[WorkerOut]
    count: int


@router.get("")
async def list_workers(store: StoreDep, settings: SettingsDep) -> WorkerList:
    """Live workers by name: host, pid, the job each one runs, when it was last heard from."""
    live = await store.workers.live(settings.ready_worker_age)
    rows = [
        WorkerOut(
            name=w.name,
            host=w.host,
            pid=w.pid,
            version=w.version,
            started_at=w.started_at,
            last_seen=utc_iso(w.last_seen) if w.last_seen is not None else "",
            task_id=w.task_id,
            phase=w.phase,
        )
        for w in live
    ]
    return WorkerList(workers=rows, count=len(rows))

"""``GET /workers``: the worker loops that sent a heartbeat recently, what they run, and the
agents whose model quota is out (every worker holds their jobs back until then)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from hookagent.api.deps import SettingsDep, StoreDep
from hookagent.models import AGENTS, utc_iso

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


class QuotaOut(BaseModel):
    """An agent out of model quota: runs of it wait until ``until``; ``hits`` in a row."""

    agent: str
    until: str
    reason: str
    hits: int


class WorkerList(BaseModel):
    """The worker loops heard from within ``HOOKAGENT_READY_WORKER_AGE`` seconds."""

    workers: list[WorkerOut]
    count: int
    quotas: list[QuotaOut]


@router.get("")
async def list_workers(store: StoreDep, settings: SettingsDep) -> WorkerList:
    """Live workers by name: host, pid, the job each one runs, when it was last heard from;
    and each agent out of model quota, until when and why."""
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
    quotas = [
        QuotaOut(agent=q.agent, until=utc_iso(q.until), reason=q.reason, hits=q.hits)
        for q in await store.quota.states(AGENTS)
    ]
    return WorkerList(workers=rows, count=len(rows), quotas=quotas)

"""``/healthz``: the API answers and Redis answers. ``/readyz``: and a worker is alive too."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from hookagent.api.deps import SettingsDep, StoreDep
from hookagent.api.errors import UNAVAILABLE, error_response

router = APIRouter(tags=["health"])

# A Redis that accepts connections but does not answer must fail the probe, not hang it.
READY_TIMEOUT_S = 3.0


class Ready(BaseModel):
    """Redis answers and ``workers`` worker loops sent a heartbeat recently."""

    status: str = "ready"
    redis: str = "ok"
    workers: int


class NotReady(BaseModel):
    """Which check failed: ``detail`` says for each of ``redis`` and ``workers``."""

    error: str = "not_ready"
    detail: dict[str, str]


@router.get("/healthz")
async def healthz(store: StoreDep) -> dict[str, str]:
    """200 when Redis answers PING; 503 (JSON) when it does not."""
    await store.ping()
    return {"status": "ok", "redis": "ok"}


@router.get("/readyz", response_model=Ready, responses={UNAVAILABLE: {"model": NotReady}})
async def readyz(store: StoreDep, settings: SettingsDep) -> Ready | JSONResponse:
    """200 when Redis answers and a worker heartbeat is recent enough; else 503 saying why."""
    age = settings.ready_worker_age
    ready = await store.workers.readiness(age, timeout=READY_TIMEOUT_S)
    if ready.redis_error is not None:
        detail = {"redis": ready.redis_error, "workers": "unknown while Redis is unreachable"}
        return error_response(UNAVAILABLE, "not_ready", detail)
    if ready.live_workers == 0:
        detail = {"redis": "ok", "workers": f"no worker heartbeat within {age:g}s"}
        return error_response(UNAVAILABLE, "not_ready", detail)
    return Ready(workers=ready.live_workers)

"""``/healthz``: the API answers and Redis answers. ``/readyz``: and a worker is alive too.

Both are served by the lean path (api/front.py) from the functions here; the routes below
declare them for /openapi.json and serve whatever the lean path passes on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from hookagent.api.deps import SettingsDep, StoreDep
from hookagent.api.errors import OK, UNAVAILABLE
from hookagent.settings import Settings
from hookagent.store import Store

router = APIRouter(tags=["health"])

# A Redis that accepts connections but does not answer must fail the probe, not hang it.
READY_TIMEOUT_S = 3.0
HEALTHY = {"status": "ok", "redis": "ok"}


class Ready(BaseModel):
    """Redis answers and ``workers`` worker loops sent a heartbeat recently."""

    status: str = "ready"
    redis: str = "ok"
    workers: int


class NotReady(BaseModel):
    """Which check failed: ``detail`` says for each of ``redis`` and ``workers``."""

    error: str = "not_ready"
    detail: dict[str, str]


class SharedPing:
    """Redis's ``PING``, one at a time: a probe arriving while one is out waits for its answer.

    Every probe still gets an answer Redis gave after the probe arrived; under many probes
    at once (a load balancer per node, a bench) they cost one round trip, not one each.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._flight: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"SharedPing(in_flight={self._flight is not None})"

    async def __call__(self) -> None:
        """Return once Redis answered a PING sent now or still out; raise its error."""
        flight = self._flight
        if flight is None:
            flight = self._flight = asyncio.ensure_future(self._ping())
            # Read by every waiter; retrieved here too, so one nobody waits for is not noise.
            flight.add_done_callback(_retrieved)
        # Shielded: a probe whose client left must not cancel the others' PING.
        await asyncio.shield(flight)

    async def _ping(self) -> None:
        try:
            await self._store.ping()
        finally:
            self._flight = None


def _retrieved(flight: asyncio.Future[None]) -> None:
    if not flight.cancelled():
        flight.exception()


async def readiness(store: Store, settings: Settings) -> tuple[int, dict[str, Any]]:
    """``/readyz``'s status and body."""
    age = settings.ready_worker_age
    ready = await store.workers.readiness(age, timeout=READY_TIMEOUT_S)
    if ready.redis_error is not None:
        detail = {"redis": ready.redis_error, "workers": "unknown while Redis is unreachable"}
        return UNAVAILABLE, {"error": "not_ready", "detail": detail}
    if ready.live_workers == 0:
        detail = {"redis": "ok", "workers": f"no worker heartbeat within {age:g}s"}
        return UNAVAILABLE, {"error": "not_ready", "detail": detail}
    return OK, Ready(workers=ready.live_workers).model_dump()


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    """200 when Redis answers PING; 503 (JSON) when it does not."""
    ping: SharedPing = request.app.state.ping
    await ping()
    return HEALTHY


@router.get("/readyz", response_model=Ready, responses={UNAVAILABLE: {"model": NotReady}})
async def readyz(store: StoreDep, settings: SettingsDep) -> Ready | JSONResponse:
    """200 when Redis answers and a worker heartbeat is recent enough; else 503 saying why."""
    status, body = await readiness(store, settings)
    if status != OK:
        return JSONResponse(body, status_code=status)
    return Ready.model_validate(body)

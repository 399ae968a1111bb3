"""``/healthz``: the API answers and Redis answers."""

from __future__ import annotations

from fastapi import APIRouter

from hookagent.api.deps import StoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(store: StoreDep) -> dict[str, str]:
    """200 when Redis answers PING; 503 (JSON) when it does not."""
    await store.ping()
    return {"status": "ok", "redis": "ok"}

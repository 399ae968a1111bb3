"""``GET /stats``: the change requests tasks opened, and what became of them."""

from __future__ import annotations

from fastapi import APIRouter

from hookagent.api.deps import StoreDep
from hookagent.models import StatsResponse
from hookagent.services.stats import change_stats

router = APIRouter(prefix="/stats", tags=["stats"])


@router.get("")
async def get_stats(store: StoreDep) -> StatsResponse:
    """Change requests per repository, source and agent, and in total (tasks still held)."""
    return await change_stats(store)

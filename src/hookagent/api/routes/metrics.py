"""``GET /metrics``: Prometheus text, read from Redis at scrape time."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from hookagent.api.deps import SettingsDep, StoreDep
from hookagent.api.metrics import exposition

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(store: StoreDep, settings: SettingsDep) -> Response:
    """Queue, tasks, log lines, webhooks, phase durations, notification backlog, cost."""
    body = await exposition(store, ready_worker_age=settings.ready_worker_age)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

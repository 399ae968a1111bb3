"""``POST /webhooks/{source}``: verify, parse, store a task, queue its planning job."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hookagent.api.deps import SettingsDep, StoreDep
from hookagent.errors import MalformedBody, UnsupportedMediaType
from hookagent.models import PHASE_QUEUES, NewTask, Phase, WebhookAccepted
from hookagent.settings import Settings
from hookagent.sources import Ignored, parse_jira, parse_sentry, verify_hmac_sha256
from hookagent.store import Store
from hookagent.workspace import validate_repo

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Delivery understood but starts no task"},
    202: {"model": WebhookAccepted, "description": "Task queued"},
    400: {"description": "Malformed JSON"},
    401: {"description": "Bad or missing signature"},
    413: {"description": "Body too large"},
    415: {"description": "Not JSON"},
    422: {"description": "No usable repository, or not a JSON object"},
}


@router.post("/sentry", status_code=202, responses=_RESPONSES)
@router.post("/sentry/", status_code=202, include_in_schema=False)
async def sentry_webhook(request: Request, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    """Sentry: the seed's shape, integration ``issue``/``event_alert``, or the legacy plugin."""
    body = await request.body()
    if settings.sentry_client_secret is not None:
        verify_hmac_sha256(
            body,
            settings.sentry_client_secret.get_secret_value(),
            request.headers.get("sentry-hook-signature"),
        )
    resource = request.headers.get("sentry-hook-resource")
    return await _accept(
        request,
        body,
        store,
        settings,
        lambda payload: parse_sentry(
            payload, resource=resource, default_repo=settings.default_repo
        ),
    )


@router.post("/jira", status_code=202, responses=_RESPONSES)
@router.post("/jira/", status_code=202, include_in_schema=False)
async def jira_webhook(request: Request, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    """Jira: ``jira:issue_created`` starts a task."""
    body = await request.body()
    if settings.jira_webhook_secret is not None:
        verify_hmac_sha256(
            body,
            settings.jira_webhook_secret.get_secret_value(),
            request.headers.get("x-hub-signature"),
            prefix="sha256=",
        )
    return await _accept(
        request,
        body,
        store,
        settings,
        lambda payload: parse_jira(payload, default_repo=settings.default_repo),
    )


async def _accept(
    request: Request,
    body: bytes,
    store: Store,
    settings: Settings,
    parse: Callable[[Any], NewTask],
) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() not in {"application/json", ""}:
        raise UnsupportedMediaType(f"expected application/json, got {content_type!r}")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from None
    try:
        new = parse(payload)
    except Ignored as ignored:
        return JSONResponse({"status": "ignored", "reason": ignored.reason}, status_code=200)
    new.repository = validate_repo(new.repository, settings.allowed_repo_set)
    task = await store.tasks.create(new, queue=PHASE_QUEUES[Phase.PLAN])
    await store.jobs.enqueue(task.task_id, Phase.PLAN)
    accepted = WebhookAccepted(task_id=task.task_id, status=task.status)
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202)

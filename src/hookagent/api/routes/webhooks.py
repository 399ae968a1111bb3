"""``POST /webhooks/{sentry,jira,github}``: verify, parse, then a new task or a command."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from hookagent.api.deps import SettingsDep, StoreDep
from hookagent.errors import MalformedBody, UnsupportedMediaType
from hookagent.models import NewTask, WebhookAccepted
from hookagent.services.intake import Applied, Created, Duplicate, Intake, Outcome, Reported
from hookagent.settings import Settings
from hookagent.sources import (
    Command,
    Ignored,
    UnknownCommand,
    parse_github,
    parse_jira,
    parse_sentry,
    verify_hmac_sha256,
)
from hookagent.store import Store

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Parser = Callable[[Any], NewTask | Command]
AgentChoice = Annotated[
    Literal["claude", "codex", "gemini", "command"] | None,
    Query(description="run this task with another agent than HOOKAGENT_AGENT"),
]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Duplicate, command applied, or a delivery that starts nothing"},
    202: {"model": WebhookAccepted, "description": "Task queued"},
    400: {"description": "Malformed JSON"},
    401: {"description": "Bad or missing signature"},
    403: {"description": "Command from someone who is not an approver"},
    404: {"description": "Command for an object no task is linked to"},
    409: {"description": "Command not allowed in the task's status"},
    413: {"description": "Body too large"},
    415: {"description": "Not JSON"},
    422: {"description": "No usable repository, or not a JSON object"},
}


@router.post("/sentry", status_code=202, responses=_RESPONSES)
@router.post("/sentry/", status_code=202, include_in_schema=False)
async def sentry_webhook(
    request: Request, store: StoreDep, settings: SettingsDep, agent: AgentChoice = None
) -> JSONResponse:
    """Sentry: the seed's shape, integration ``issue``/``event_alert``, or the legacy plugin."""
    body = await _verified(request, settings.sentry_client_secret, "sentry-hook-signature", "")
    resource = request.headers.get("sentry-hook-resource")
    default = settings.default_repo

    def parse(payload: Any) -> NewTask:
        return parse_sentry(payload, resource=resource, default_repo=default)

    payload = _json(request, body)
    action = payload.get("action", "") if isinstance(payload, dict) else ""

    def delivery(new: Any) -> str:
        return f"{new.external_id}:{action}"

    return await _handle(store, settings, payload, parse, delivery, agent)


@router.post("/jira", status_code=202, responses=_RESPONSES)
@router.post("/jira/", status_code=202, include_in_schema=False)
async def jira_webhook(
    request: Request, store: StoreDep, settings: SettingsDep, agent: AgentChoice = None
) -> JSONResponse:
    """Jira: ``jira:issue_created`` starts a task; comments and transitions command one."""
    body = await _verified(request, settings.jira_webhook_secret, "x-hub-signature", "sha256=")

    def parse(payload: Any) -> NewTask | Command:
        return parse_jira(
            payload,
            default_repo=settings.default_repo,
            approve_status=settings.jira_approve_status,
            reject_status=settings.jira_reject_status,
        )

    delivery = request.headers.get("x-atlassian-webhook-identifier")
    return await _handle(store, settings, _json(request, body), parse, lambda _: delivery, agent)


@router.post("/github", status_code=202, responses=_RESPONSES)
@router.post("/github/", status_code=202, include_in_schema=False)
async def github_webhook(
    request: Request, store: StoreDep, settings: SettingsDep, agent: AgentChoice = None
) -> JSONResponse:
    """GitHub: a labelled issue starts a task; ``@hookagent <command>`` comments command one."""
    secret = settings.github_webhook_secret
    body = await _verified(request, secret, "x-hub-signature-256", "sha256=")
    event = request.headers.get("x-github-event")

    def parse(payload: Any) -> NewTask | Command:
        return parse_github(
            payload, event=event, label=settings.github_label, bot_login=settings.github_bot_login
        )

    delivery = request.headers.get("x-github-delivery")
    return await _handle(store, settings, _json(request, body), parse, lambda _: delivery, agent)


async def _verified(request: Request, secret: SecretStr | None, header: str, prefix: str) -> bytes:
    body = await request.body()
    if secret is not None:
        verify_hmac_sha256(
            body, secret.get_secret_value(), request.headers.get(header), prefix=prefix
        )
    return body


def _json(request: Request, body: bytes) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() not in {"application/json", ""}:
        raise UnsupportedMediaType(f"expected application/json, got {content_type!r}")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from None


async def _handle(
    store: Store,
    settings: Settings,
    payload: Any,
    parse: Parser,
    delivery_of: Callable[[Any], str | None],
    agent: str | None,
) -> JSONResponse:
    try:
        parsed = parse(payload)
    except Ignored as ignored:
        return JSONResponse({"status": "ignored", "reason": ignored.reason}, status_code=200)
    except UnknownCommand as unknown:
        reason = f"unknown command {unknown.word!r}; try approve, reject, revise, status, cancel"
        return JSONResponse({"status": "ignored", "reason": reason}, status_code=200)
    intake = Intake(store, settings)
    if isinstance(parsed, Command):
        outcome: Outcome = await intake.command(parsed, delivery=delivery_of(parsed))
    else:
        parsed.agent = agent
        delivery = delivery_of(parsed) if parsed.external_id or parsed.source != "sentry" else None
        outcome = await intake.new_task(parsed, delivery=delivery)
    return _answer(outcome)


def _answer(outcome: Outcome) -> JSONResponse:
    """The HTTP answer to a delivery's outcome."""
    if isinstance(outcome, Created):
        body = {"task_id": outcome.task.task_id, "status": outcome.task.status.value}
        return JSONResponse(body, status_code=202)
    if isinstance(outcome, Duplicate):
        if outcome.task_id is None:  # a command delivered twice
            return JSONResponse({"status": "duplicate", "detail": outcome.detail})
        status = outcome.status.value if outcome.status else None
        return JSONResponse(
            {
                "task_id": outcome.task_id,
                "status": status,
                "duplicate": True,
                "detail": outcome.detail,
            }
        )
    if isinstance(outcome, Reported):
        task = outcome.task
        return JSONResponse({"task_id": task.task_id, "status": task.status, "plan": task.plan})
    assert isinstance(outcome, Applied)  # the last kind; mypy checks the union is covered
    return JSONResponse(outcome.result.model_dump(mode="json"))

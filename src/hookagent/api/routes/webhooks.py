"""``POST /webhooks/{sentry,jira,github,gitlab,linear}``: verify, parse, a task or a command."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, NamedTuple, ParamSpec

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from hookagent.api.deps import RedactorDep, SettingsDep, StoreDep, get_policies
from hookagent.api.errors import ACCEPTED, OK, error_response, http_status
from hookagent.errors import RateLimited, RetryLater, UnsupportedMediaType, quoted
from hookagent.models import NewTask, WebhookAccepted
from hookagent.policy import Policies
from hookagent.redact import Redactor
from hookagent.services.intake import Applied, Created, Duplicate, Intake, Outcome, Reported
from hookagent.settings import Settings
from hookagent.sources import (
    Command,
    Ignored,
    UnknownCommand,
    check_timestamp,
    linear_event_id,
    parse_github,
    parse_gitlab,
    parse_jira,
    parse_linear,
    parse_sentry,
    verify_hmac_sha256,
    verify_token,
)
from hookagent.sources.payload import parse_json
from hookagent.store import Store

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Parser = Callable[[Any], NewTask | Command]
P = ParamSpec("P")
AgentChoice = Annotated[
    Literal["claude", "codex", "gemini", "command"] | None,
    Query(description="run this task with another agent than HOOKAGENT_AGENT"),
]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Duplicate, command applied, or a delivery that starts nothing"},
    202: {"model": WebhookAccepted, "description": "Task queued"},
    400: {"description": "Malformed JSON"},
    401: {"description": "Bad or missing signature, or a command in an unsigned delivery"},
    403: {"description": "Command from someone who is not an approver"},
    404: {"description": "Command for an object no task is linked to"},
    409: {"description": "Command not allowed in the task's status"},
    413: {"description": "Body too large"},
    415: {"description": "Not JSON"},
    422: {"description": "No usable repository, or not a JSON object"},
    429: {"description": "Over HOOKAGENT_RATE_LIMIT deliveries this minute (see Retry-After)"},
    503: {"description": "HOOKAGENT_MAX_QUEUED tasks are queued (see Retry-After)"},
}


class Verified(NamedTuple):
    """A delivery's raw body, and whether its signature verified against a secret."""

    body: bytes
    signed: bool


def _retry_after(
    endpoint: Callable[P, Awaitable[JSONResponse]],
) -> Callable[P, Awaitable[JSONResponse]]:
    """Answer a :class:`RetryLater` refusal with its status and a ``Retry-After`` header."""

    @functools.wraps(endpoint)
    async def answer(*args: P.args, **kwargs: P.kwargs) -> JSONResponse:
        try:
            return await endpoint(*args, **kwargs)
        except RetryLater as exc:
            response = error_response(http_status(exc), exc.code, exc.message)
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response

    return answer


@router.post("/sentry", status_code=202, responses=_RESPONSES)
@router.post("/sentry/", status_code=202, include_in_schema=False)
@_retry_after
async def sentry_webhook(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    redactor: RedactorDep,
    agent: AgentChoice = None,
) -> JSONResponse:
    """Sentry: the seed's shape, integration ``issue``/``event_alert``, or the legacy plugin."""
    await _admit(store, "sentry")
    body, signed = await _verified(
        request, settings.sentry_client_secret, "sentry-hook-signature", ""
    )
    resource = request.headers.get("sentry-hook-resource")
    default = settings.default_repo

    def parse(payload: Any) -> NewTask:
        return parse_sentry(payload, resource=resource, default_repo=default)

    payload = _json(request, body)
    action = payload.get("action", "") if isinstance(payload, dict) else ""

    def delivery(new: Any) -> str:
        return f"{new.external_id}:{action}"

    pol = get_policies(request)  # the app's reader: a bad reload keeps the last good file
    return await _handle(
        store, settings, payload, parse, delivery, agent, signed=signed, pol=pol, redactor=redactor
    )


@router.post("/jira", status_code=202, responses=_RESPONSES)
@router.post("/jira/", status_code=202, include_in_schema=False)
@_retry_after
async def jira_webhook(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    redactor: RedactorDep,
    agent: AgentChoice = None,
) -> JSONResponse:
    """Jira: ``jira:issue_created`` starts a task; comments and transitions command one."""
    await _admit(store, "jira")
    body, signed = await _verified(
        request, settings.jira_webhook_secret, "x-hub-signature", "sha256="
    )

    def parse(payload: Any) -> NewTask | Command:
        return parse_jira(
            payload,
            default_repo=settings.default_repo,
            approve_status=settings.jira_approve_status,
            reject_status=settings.jira_reject_status,
        )

    delivery = request.headers.get("x-atlassian-webhook-identifier")
    payload = _json(request, body)
    pol = get_policies(request)
    return await _handle(
        store,
        settings,
        payload,
        parse,
        lambda _: delivery,
        agent,
        signed=signed,
        pol=pol,
        redactor=redactor,
    )


@router.post("/github", status_code=202, responses=_RESPONSES)
@router.post("/github/", status_code=202, include_in_schema=False)
@_retry_after
async def github_webhook(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    redactor: RedactorDep,
    agent: AgentChoice = None,
) -> JSONResponse:
    """GitHub: a labelled issue starts a task; ``@hookagent <command>`` comments command one."""
    await _admit(store, "github")
    secret = settings.github_webhook_secret
    body, signed = await _verified(request, secret, "x-hub-signature-256", "sha256=")
    event = request.headers.get("x-github-event")

    def parse(payload: Any) -> NewTask | Command:
        return parse_github(
            payload, event=event, label=settings.github_label, bot_login=settings.github_bot_login
        )

    delivery = request.headers.get("x-github-delivery")
    payload = _json(request, body)
    pol = get_policies(request)
    return await _handle(
        store,
        settings,
        payload,
        parse,
        lambda _: delivery,
        agent,
        signed=signed,
        pol=pol,
        redactor=redactor,
    )


@router.post("/gitlab", status_code=202, responses=_RESPONSES)
@router.post("/gitlab/", status_code=202, include_in_schema=False)
@_retry_after
async def gitlab_webhook(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    redactor: RedactorDep,
    agent: AgentChoice = None,
) -> JSONResponse:
    """GitLab: a labelled issue starts a task; ``@hookagent <command>`` notes command one."""
    await _admit(store, "gitlab")
    body = await request.body()
    secret = settings.gitlab_webhook_secret
    # GitLab signs nothing: the shared X-Gitlab-Token is what counts as the signature.
    if secret is not None:
        verify_token(secret.get_secret_value(), request.headers.get("x-gitlab-token"))
    event = request.headers.get("x-gitlab-event")

    def parse(payload: Any) -> NewTask | Command:
        return parse_gitlab(
            payload,
            event=event,
            label=settings.gitlab_label,
            bot_username=settings.gitlab_bot_username,
        )

    delivery = request.headers.get("x-gitlab-event-uuid")
    payload = _json(request, body)
    signed = secret is not None
    pol = get_policies(request)
    return await _handle(
        store,
        settings,
        payload,
        parse,
        lambda _: delivery,
        agent,
        signed=signed,
        pol=pol,
        redactor=redactor,
    )


@router.post("/linear", status_code=202, responses=_RESPONSES)
@router.post("/linear/", status_code=202, include_in_schema=False)
@_retry_after
async def linear_webhook(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    redactor: RedactorDep,
    agent: AgentChoice = None,
) -> JSONResponse:
    """Linear: a labelled issue starts a task; ``@hookagent <command>`` comments command one."""
    await _admit(store, "linear")
    body, signed = await _verified(request, settings.linear_webhook_secret, "linear-signature", "")
    payload = _json(request, body)
    if signed:
        # The signature covers the timestamp: a fresh one proves this is no late replay.
        check_timestamp(payload, time.time())

    def parse(payload: Any) -> NewTask | Command:
        return parse_linear(
            payload,
            label=settings.linear_label,
            projects=settings.linear_project_map,
            default_repo=settings.default_repo,
            bot_user=settings.linear_bot_user,
            allowed_repos=settings.allowed_repo_set,
        )

    # The signed comment or issue event, not the unsigned ``Linear-Delivery`` header: a
    # captured delivery resent under a new header within the minute is still a duplicate.
    delivery = linear_event_id(payload) or request.headers.get("linear-delivery")
    pol = get_policies(request)
    return await _handle(
        store,
        settings,
        payload,
        parse,
        lambda _: delivery,
        agent,
        signed=signed,
        pol=pol,
        redactor=redactor,
    )


async def _admit(store: Store, source: str) -> None:
    """Count the delivery against ``HOOKAGENT_RATE_LIMIT``, before any other work on it."""
    counted = await store.rates.count(source)
    if not counted.allowed:
        raise RateLimited(
            f"more than {store.rates.limit} deliveries from {source} this minute "
            "(HOOKAGENT_RATE_LIMIT); retry later",
            retry_after_s=counted.retry_after_s,
        )


async def _verified(
    request: Request, secret: SecretStr | None, header: str, prefix: str
) -> Verified:
    """The raw body, checked against ``secret``; unsigned only when no secret is set."""
    body = await request.body()
    if secret is None:
        return Verified(body, signed=False)
    verify_hmac_sha256(body, secret.get_secret_value(), request.headers.get(header), prefix=prefix)
    return Verified(body, signed=True)


def _json(request: Request, body: bytes) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() not in {"application/json", ""}:
        raise UnsupportedMediaType(f"expected application/json, got {quoted(content_type)}")
    return parse_json(body)


async def _handle(
    store: Store,
    settings: Settings,
    payload: Any,
    parse: Parser,
    delivery_of: Callable[[Any], str | None],
    agent: str | None,
    *,
    signed: bool,
    pol: Policies,
    redactor: Redactor,
) -> JSONResponse:
    try:
        parsed = parse(payload)
    except Ignored as ignored:
        return JSONResponse({"status": "ignored", "reason": ignored.reason}, status_code=OK)
    except UnknownCommand as unknown:
        reason = f"unknown command {unknown.word!r}; try approve, reject, revise, status, cancel"
        return JSONResponse({"status": "ignored", "reason": reason}, status_code=OK)
    # The app's redactor: building one per request scanned the environment every time.
    intake = Intake(store, settings, policies=pol, redactor=redactor)
    if isinstance(parsed, Command):
        outcome: Outcome = await intake.command(parsed, delivery=delivery_of(parsed), signed=signed)
    else:
        parsed.agent = agent
        delivery = delivery_of(parsed) if parsed.external_id or parsed.source != "sentry" else None
        outcome = await intake.new_task(parsed, delivery=delivery, signed=signed)
    return _answer(outcome)


def _answer(outcome: Outcome) -> JSONResponse:
    """The HTTP answer to a delivery's outcome."""
    if isinstance(outcome, Created):
        body = {"task_id": outcome.task.task_id, "status": outcome.task.status.value}
        return JSONResponse(body, status_code=ACCEPTED)
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

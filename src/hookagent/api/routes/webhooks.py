"""``POST /webhooks/{sentry,jira,github,gitlab,linear}``: one handler, read from the sources table.

Every delivery takes the same steps, whatever its source (sources/table.py holds what
differs): verify the raw body against the source's secret; count it (verified deliveries
against the source's ``HOOKAGENT_RATE_LIMIT``, the rest against their client address's,
so no volume of unsigned traffic can spend a signed delivery's budget); parse; dedupe;
then a new task or a command on an existing one.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, ParamSpec

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from hookagent.api.deps import RedactorDep, SettingsDep, StoreDep, client_address, get_policies
from hookagent.api.errors import ACCEPTED, OK, error_response, http_status
from hookagent.errors import (
    RateLimited,
    RetryLater,
    SignatureError,
    UnsupportedMediaType,
    quoted,
)
from hookagent.models import WebhookAccepted
from hookagent.redact import Redactor
from hookagent.services.intake import (
    Created,
    Duplicate,
    Intake,
    Outcome,
    Outdated,
    Reported,
)
from hookagent.services.reviews import Reviews
from hookagent.settings import Settings
from hookagent.sources import ChangeEnded, Command, Ignored, UnknownCommand
from hookagent.sources.payload import parse_json
from hookagent.sources.reviews import ReviewRequest
from hookagent.sources.table import SOURCES, Source
from hookagent.store import Store

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

P = ParamSpec("P")
Endpoint = Callable[..., Awaitable[JSONResponse]]
AgentChoice = Annotated[
    Literal["claude", "codex", "gemini", "command"] | None,
    Query(description="run this task with another agent than HOOKAGENT_AGENT"),
]
# IPv6 clients are budgeted per /64: one host usually holds a whole one.
IPV6_BUDGET_PREFIX = 64

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Duplicate, command applied, or a delivery that starts nothing"},
    202: {"model": WebhookAccepted, "description": "Task queued"},
    400: {"description": "Malformed JSON"},
    401: {
        "description": (
            "Bad or missing signature, or a command or a change request's end in an "
            "unsigned delivery"
        )
    },
    403: {"description": "Command from someone who is not an approver"},
    404: {"description": "Command for an object no task is linked to"},
    409: {"description": "Command not allowed in the task's status"},
    413: {"description": "Body too large"},
    415: {"description": "Not JSON"},
    422: {"description": "No usable repository, or not a JSON object"},
    429: {"description": "Over HOOKAGENT_RATE_LIMIT deliveries this minute (see Retry-After)"},
    503: {"description": "HOOKAGENT_MAX_QUEUED tasks are queued (see Retry-After)"},
}


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


def _endpoint(source: Source) -> Endpoint:
    """The route of one source: the one handler, bound to its row of the table."""

    async def endpoint(
        request: Request,
        store: StoreDep,
        settings: SettingsDep,
        redactor: RedactorDep,
        agent: AgentChoice = None,
    ) -> JSONResponse:
        return await receive(source, request, store, settings, redactor, agent)

    endpoint.__name__ = endpoint.__qualname__ = f"{source.name}_webhook"
    endpoint.__doc__ = source.description
    return _retry_after(endpoint)


for _source in SOURCES.values():
    _handler = _endpoint(_source)
    _name = f"{_source.name}_webhook"
    router.add_api_route(
        f"/{_source.name}",
        _handler,
        methods=["POST"],
        status_code=202,
        responses=_RESPONSES,
        name=_name,
        description=_source.description,
    )
    router.add_api_route(
        f"/{_source.name}/",
        _handler,
        methods=["POST"],
        status_code=202,
        include_in_schema=False,
        name=_name,
    )


async def receive(
    source: Source,
    request: Request,
    store: Store,
    settings: Settings,
    redactor: Redactor,
    agent: str | None,
) -> JSONResponse:
    """A delivery from ``source``: verified, counted, parsed, deduplicated, then acted on."""
    body = await request.body()
    signed, payload = await _admit(source, request, store, settings, body)
    try:
        parsed = source.parse(payload, request.headers, settings)
    except Ignored as ignored:
        return _ignored(ignored.reason)
    except UnknownCommand as unknown:
        return _ignored(
            f"unknown command {unknown.word!r}; try approve, reject, revise, status, cancel"
        )
    delivery = source.delivery(request.headers, payload, parsed)
    # The app's policy reader and redactor: a bad reload keeps the last good file, and
    # building a redactor per request scanned the environment every time.
    intake = Intake(store, settings, policies=get_policies(request), redactor=redactor)
    if isinstance(parsed, Command):
        outcome: Outcome = await intake.command(parsed, delivery=delivery, signed=signed)
    elif isinstance(parsed, ChangeEnded):
        outcome = await intake.change_ended(parsed, delivery=delivery, signed=signed)
    elif isinstance(parsed, ReviewRequest):
        reviews = Reviews(store, settings, policies=get_policies(request), redactor=redactor)
        outcome = await reviews.request(parsed, delivery=delivery, signed=signed)
    else:
        parsed.agent = agent
        outcome = await intake.new_task(parsed, delivery=delivery, signed=signed)
    return _answer(outcome)


async def _admit(
    source: Source, request: Request, store: Store, settings: Settings, body: bytes
) -> tuple[bool, Any]:
    """Verify, then count; (verified?, the payload).

    The signature first: counting before it let unsigned traffic spend the budget of signed
    deliveries. A delivery that fails it, or arrives unsigned because the source has no
    secret, counts against its client address instead.
    """
    address = client_address(request)
    try:
        signed = source.signed(settings, request.headers, body)
        if not signed:
            await _count_unverified(store, address)
        payload = _json(request, body)
        if signed and source.fresh is not None:
            source.fresh(payload, time.time())
    except SignatureError:
        await _count_unverified(store, address)
        raise
    if signed:
        await _count(store, source.name)
    return signed, payload


async def _count(store: Store, source: str) -> None:
    """Count a verified delivery against ``HOOKAGENT_RATE_LIMIT`` for its source."""
    counted = await store.rates.count(source)
    if not counted.allowed:
        raise RateLimited(
            f"more than {store.rates.limit} deliveries from {source} this minute "
            "(HOOKAGENT_RATE_LIMIT); retry later",
            retry_after_s=counted.retry_after_s,
        )


async def _count_unverified(store: Store, address: str) -> None:
    """Count an unverified delivery against ``HOOKAGENT_RATE_LIMIT`` for its client address."""
    counted = await store.unverified.count(_budget_holder(address))
    if not counted.allowed:
        raise RateLimited(
            f"more than {store.unverified.limit} unverified deliveries from {address} this "
            "minute (HOOKAGENT_RATE_LIMIT); retry later",
            retry_after_s=counted.retry_after_s,
        )


def _budget_holder(address: str) -> str:
    """Who an address's budget belongs to: the address, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]  # "unknown", or whatever a test transport says
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/{IPV6_BUDGET_PREFIX}", strict=False))
    return str(ip)


def _json(request: Request, body: bytes) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() not in {"application/json", ""}:
        raise UnsupportedMediaType(f"expected application/json, got {quoted(content_type)}")
    return parse_json(body)


def _ignored(reason: str) -> JSONResponse:
    """200: nothing to retry, and nothing done."""
    return JSONResponse({"status": "ignored", "reason": reason}, status_code=OK)


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
    if isinstance(outcome, Outdated):
        # 200, not an error: the sender should not retry what can never apply.
        return JSONResponse(
            {"status": "ignored", "reason": outcome.reason, "task_id": outcome.task_id}
        )
    return JSONResponse(outcome.result.model_dump(mode="json"))

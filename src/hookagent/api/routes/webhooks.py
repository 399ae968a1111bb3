"""``POST /webhooks/{sentry,jira,github,gitlab,linear}``: one handler, read from the sources table.

Every delivery takes the same steps, whatever its source (sources/table.py holds what
differs): verify the raw body against the source's secret; count it (verified deliveries
against the source's ``HOOKAGENT_RATE_LIMIT``, the rest against their client address's,
so no volume of unsigned traffic can spend a signed delivery's budget); parse; dedupe;
then a new task or a command on an existing one.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from hookagent.api.deps import client_address
from hookagent.api.errors import ACCEPTED, OK, http_status
from hookagent.errors import (
    HookagentError,
    RateLimited,
    RetryLater,
    SignatureError,
    UnsupportedMediaType,
    quoted,
)
from hookagent.models import WebhookAccepted
from hookagent.services.intake import (
    Created,
    Duplicate,
    Gathered,
    Intake,
    Outcome,
    Outdated,
    Reported,
)
from hookagent.services.reviews import Reviews
from hookagent.settings import Settings
from hookagent.sources import (
    ChangeEnded,
    ChecksFailed,
    Command,
    Feedback,
    Ignored,
    UnknownCommand,
)
from hookagent.sources.payload import parse_json
from hookagent.sources.reviews import ReviewRequest
from hookagent.sources.table import SOURCES, Headers, Source
from hookagent.store import Store

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Endpoint = Callable[..., Awaitable[JSONResponse]]
AgentName = Literal["claude", "codex", "gemini", "command"]
AGENTS = frozenset(get_args(AgentName))
AgentChoice = Annotated[
    AgentName | None,
    Query(description="run this task with another agent than HOOKAGENT_AGENT"),
]
# IPv6 clients are budgeted per /64: one host usually holds a whole one.
IPV6_BUDGET_PREFIX = 64

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Duplicate, command applied, or a delivery that starts nothing"},
    202: {"model": WebhookAccepted, "description": "Task queued, or review feedback kept"},
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


@dataclass(frozen=True, slots=True)
class Answer:
    """A delivery's answer: status, JSON body, extra headers; ``counted`` by the store already."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()
    counted: bool = False


def refusal(exc: HookagentError) -> Answer:
    """The answer to a refused delivery: its JSON error, with ``Retry-After`` when it says so."""
    retry = (("retry-after", str(exc.retry_after_s)),) if isinstance(exc, RetryLater) else ()
    return Answer(http_status(exc), {"error": exc.code, "detail": exc.message}, retry)


def _endpoint(source: Source) -> Endpoint:
    """The route of one source: the one handler, bound to its row of the table.

    It serves what the lean path (api/front.py) passes on (a chunked body, an unusual query)
    and declares the route for /openapi.json and the access rules.
    """

    async def endpoint(request: Request, agent: AgentChoice = None) -> JSONResponse:
        try:
            answer = await deliver(
                source,
                body=await request.body(),
                headers=request.headers,
                address=client_address(request),
                agent=agent,
                intake=intake_of(request.app.state),
                counts=False,  # the front's webhook counter counts what this answers
            )
        except RetryLater as exc:
            answer = refusal(exc)
        return JSONResponse(answer.body, answer.status, headers=dict(answer.headers))

    endpoint.__name__ = endpoint.__qualname__ = f"{source.name}_webhook"
    endpoint.__doc__ = source.description
    return endpoint


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


def intake_of(state: Any) -> Intake:
    """The app's intake (built once by its lifespan: the policy reader, the redactor)."""
    intake: Intake = state.intake
    return intake


async def deliver(
    source: Source,
    *,
    body: bytes,
    headers: Headers,
    address: str,
    agent: str | None,
    intake: Intake,
    counts: bool = True,
) -> Answer:
    """A delivery from ``source``: verified, counted, parsed, deduplicated, then acted on.

    A signed delivery is counted against its source's rate once parsed: by the one-trip
    creation script for a new task, on its own for anything else (before any error).
    ``counts``: a new task is counted as a created webhook in the same step (the answer
    says ``counted``), else the caller counts every answer.
    """
    store, settings = intake.store, intake.settings
    signed, payload = await _admit(source, headers, address, store, settings, body)
    counted = not signed  # an unsigned one was counted against its address
    try:
        parsed = source.parse(payload, headers, settings)
    except (Ignored, UnknownCommand) as skipped:
        if not counted:
            await intake.count(source.name)
        if isinstance(skipped, Ignored):
            return _ignored(skipped.reason)
        return _ignored(
            f"unknown command {skipped.word!r}; try approve, reject, revise, status, cancel, fix-ci"
        )
    except Exception:
        if not counted:
            await intake.count(source.name)  # over the rate: that answer wins
        raise
    delivery = source.delivery(headers, payload, parsed)
    if isinstance(parsed, Command | ChangeEnded | Feedback | ChecksFailed):
        if not counted:
            await intake.count(source.name)
        return _answer(await _on_task(intake, parsed, delivery=delivery, signed=signed))
    if isinstance(parsed, ReviewRequest):
        if not counted:
            await intake.count(source.name)
        reviews = Reviews(intake)
        return _answer(await reviews.request(parsed, delivery=delivery, signed=signed))
    parsed.agent = agent
    outcome = await intake.new_task(
        parsed,
        delivery=delivery,
        signed=signed,
        count=not counted,
        webhook=source.name if counts else "",
    )
    return _answer(outcome)


async def _on_task(
    intake: Intake,
    parsed: Command | ChangeEnded | Feedback | ChecksFailed,
    *,
    delivery: str | None,
    signed: bool,
) -> Outcome:
    """What a delivery about an existing task does to it."""
    if isinstance(parsed, Command):
        return await intake.command(parsed, delivery=delivery, signed=signed)
    if isinstance(parsed, ChangeEnded):
        return await intake.change_ended(parsed, delivery=delivery, signed=signed)
    if isinstance(parsed, ChecksFailed):
        return await intake.ci.checks_failed(parsed, signed=signed)
    return await intake.feedback(parsed, delivery=delivery, signed=signed)


async def _admit(
    source: Source, headers: Headers, address: str, store: Store, settings: Settings, body: bytes
) -> tuple[bool, Any]:
    """Verify; (verified?, the payload). An unverified delivery is counted here.

    The signature first: counting before it let unsigned traffic spend the budget of signed
    deliveries. A delivery that fails it, or arrives unsigned because the source has no
    secret, counts against its client address instead.
    """
    try:
        signed = source.signed(settings, headers, body)
        if not signed:
            await _count_unverified(store, address)
        payload = _json(headers, body)
        if signed and source.fresh is not None:
            source.fresh(payload, time.time())
    except SignatureError:
        await _count_unverified(store, address)
        raise
    return signed, payload


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


def _json(headers: Headers, body: bytes) -> Any:
    content_type = headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() not in {"application/json", ""}:
        raise UnsupportedMediaType(f"expected application/json, got {quoted(content_type)}")
    return parse_json(body)


def _ignored(reason: str) -> Answer:
    """200: nothing to retry, and nothing done."""
    return Answer(OK, {"status": "ignored", "reason": reason})


def _answer(outcome: Outcome) -> Answer:
    """The HTTP answer to a delivery's outcome."""
    if isinstance(outcome, Created):
        body = {"task_id": outcome.task.task_id, "status": outcome.task.status.value}
        return Answer(ACCEPTED, body, counted=outcome.counted)
    if isinstance(outcome, Duplicate):
        if outcome.task_id is None:  # a command delivered twice
            return Answer(OK, {"status": "duplicate", "detail": outcome.detail})
        status = outcome.status.value if outcome.status else None
        return Answer(
            OK,
            {
                "task_id": outcome.task_id,
                "status": status,
                "duplicate": True,
                "detail": outcome.detail,
            },
        )
    if isinstance(outcome, Reported):
        task = outcome.task
        return Answer(OK, {"task_id": task.task_id, "status": task.status.value, "plan": task.plan})
    if isinstance(outcome, Gathered):
        # 202: kept; the round runs once feedback has been quiet for the debounce.
        kept = {"task_id": outcome.task_id, "status": "feedback", "round_queued": outcome.queued}
        return Answer(ACCEPTED, kept)
    if isinstance(outcome, Outdated):
        # 200, not an error: the sender should not retry what can never apply.
        return Answer(
            OK, {"status": "ignored", "reason": outcome.reason, "task_id": outcome.task_id}
        )
    return Answer(OK, outcome.result.model_dump(mode="json"))

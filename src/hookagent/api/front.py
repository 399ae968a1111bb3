"""The one ASGI layer in front of the app, and the lean path it serves the hot routes on.

Four middlewares (forwarded address, Origin check, webhook counter, body limit) wrapped
FastAPI's own five layers, and a request went through all of them, FastAPI's routing and
its dependency solving before a line of ours ran: ~600 µs of CPU for a ``/healthz`` whose
own work is one ``PING``. Here they are one layer. It writes the client's address into the
scope and refuses a foreign ``Origin`` for every request, then serves ``GET /healthz``,
``GET /readyz`` and ``POST /webhooks/<source>`` itself: the same functions the FastAPI
routes call (routes/health.py, routes/webhooks.py), their answers encoded with orjson. It
also serves the plain page of a task's log (``GET /tasks/{id}/logs`` with at most
``offset`` and ``limit``), after the same viewer check the router's guard makes
(routes/tasks.py builds the same page).

Those routes stay declared, so /openapi.json and the access rules are what they were; a
request the lean path does not take exactly as FastAPI would (an unusual query, a body
without a declared length, a CORS request) is passed on to them, through the body limit
and the webhook counter, and answered there as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookagent.api.access_log import AccessLog
from hookagent.api.auth.guard import admit
from hookagent.api.auth.origin import OriginMiddleware
from hookagent.api.auth.tokens import Role
from hookagent.api.errors import encode_json, failure
from hookagent.api.limits import BodyLimitMiddleware
from hookagent.api.metrics import WebhookCounter, count_webhook, webhook_outcome
from hookagent.api.proxies import ForwardedMiddleware
from hookagent.api.routes import health
from hookagent.api.routes.tasks import MAX_PAGE, logs_page
from hookagent.api.routes.webhooks import AGENTS, deliver, intake_of, refusal
from hookagent.errors import HookagentError
from hookagent.settings import Settings
from hookagent.sources.table import SOURCES, Source

log = logging.getLogger(__name__)

Lean = Callable[[Scope, Receive, Send], Awaitable[None]]
# The log page route's path (a task id is one path segment, as FastAPI matches it).
_LOGS_PATH = re.compile(r"/tasks/([^/]+)/logs")
# Offsets are log sequence numbers (api/deps.py's MAX_OFFSET); FastAPI judges any other.
_MAX_OFFSET = 2**53


class Front:
    """Client address and Origin for every request; the hot routes served lean; the rest on."""

    def __init__(
        self,
        app: ASGIApp,
        owner: Any,
        settings: Settings,
        *,
        allowed_origins: list[str],
        access: AccessLog | None = None,
    ) -> None:
        self._owner = owner  # the FastAPI app: its state, and the scope's "app" for the guard
        state = owner.state
        self._state = state
        self._max_body = settings.max_body_bytes
        self._access = access
        # A CORS request needs the CORS layer's headers: the app's own stack adds them.
        self._cors = bool(settings.cors_origin_list)
        self._forwarded = ForwardedMiddleware(app, trusted=settings.trusted_proxy_networks)
        self._origin = OriginMiddleware(app, allowed=allowed_origins, anonymous=not state.tokens)
        # The body limit inside the counter: a refused oversized delivery is counted too.
        limited = BodyLimitMiddleware(app, max_bytes=self._max_body)
        self.rest: ASGIApp = WebhookCounter(limited, state=state)
        self._lean: dict[tuple[str, str], Lean] = {
            ("GET", "/healthz"): self._healthz,
            ("GET", "/readyz"): self._readyz,
        }
        for source in SOURCES.values():
            for path in (f"/webhooks/{source.name}", f"/webhooks/{source.name}/"):
                self._lean[("POST", path)] = self._webhook_of(source)

    def __repr__(self) -> str:
        return f"Front({len(self._lean)} lean routes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection (or pass on the lifespan); log each HTTP request."""
        access = self._access
        if access is None or scope["type"] != "http":
            await self._serve(scope, receive, send)
            return
        answered = False

        async def logged(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                access.request(scope, message["status"])
            await send(message)

        try:
            await self._serve(scope, receive, logged)
        except Exception:
            if not answered:  # uvicorn answers 500 for the app (a cancel: the client left)
                access.request(scope, 500)
            raise

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self._forwarded.rewrite(scope)
            foreign = self._origin.foreign(scope)
            if foreign is not None:
                await self._origin.refuse(scope, send, foreign)
                return
            if scope["type"] == "http" and not (self._cors and _has_origin(scope)):
                lean = self._lean.get((scope["method"], scope["path"]))
                if lean is not None:
                    await lean(scope, receive, send)
                    return
                if scope["method"] == "GET" and (found := _LOGS_PATH.fullmatch(scope["path"])):
                    await self._logs(found[1], scope, receive, send)
                    return
        await self.rest(scope, receive, send)

    async def _logs(self, task_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        page = _page_query(scope["query_string"])
        if page is None:
            await self.rest(scope, receive, send)  # a filter, follow, or a value to judge
            return
        scope["app"] = self._owner
        try:
            await admit(HTTPConnection(scope), Role.VIEWER, ticket=None)
        except HookagentError:
            # Refused: the router's guard refuses it again, in its words and headers.
            await self.rest(scope, receive, send)
            return
        offset, limit = page
        try:
            status, body = 200, await logs_page(self._state.store, task_id, offset, limit)
        except Exception as exc:
            status, body = failure("GET", scope["path"], exc)
        await send_json(send, status, body)

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            ping: health.SharedPing = self._state.ping
            await ping()
        except Exception as exc:
            status, body = failure("GET", "/healthz", exc)
            await send_json(send, status, body)
            return
        await send_json(send, 200, health.HEALTHY)

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, body = await health.readiness(self._state.store, self._state.settings)
        except Exception as exc:
            status, body = failure("GET", "/readyz", exc)
        await send_json(send, status, body)

    def _webhook_of(self, source: Source) -> Lean:
        async def webhook(scope: Scope, receive: Receive, send: Send) -> None:
            await self._webhook(source, scope, receive, send)

        return webhook

    async def _webhook(self, source: Source, scope: Scope, receive: Receive, send: Send) -> None:
        agent = _agent(scope["query_string"])
        declared = _declared_length(scope["headers"])
        if isinstance(agent, bool) or declared is None or declared > self._max_body:
            # An agent FastAPI must refuse (422 in its words), a chunked or oversized body:
            # the app's stack answers them as it always did.
            await self.rest(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client left before sending its body: nobody to answer
        client = scope.get("client")
        try:
            answer = await deliver(
                source,
                body=body,
                headers=Headers(scope=scope),
                address=client[0] if client else "unknown",
                agent=agent,
                intake=intake_of(self._state),
            )
            status, content, extra, counted = (
                answer.status,
                answer.body,
                answer.headers,
                answer.counted,
            )
        except HookagentError as exc:
            refused = refusal(exc)
            status, content, extra, counted = refused.status, refused.body, refused.headers, False
        except Exception as exc:
            status, content = failure("POST", scope["path"], exc)
            extra, counted = (), False
        await send_json(send, status, content, extra)
        if not counted:
            await count_webhook(self._state.store, source.name, webhook_outcome(status))


async def send_json(
    send: Send, status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()
) -> None:
    """Answer ``body`` as JSON (what Starlette's ``JSONResponse`` sends, encoded by orjson)."""
    content = encode_json(body)
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": content})


def _page_query(query: bytes) -> tuple[int, int] | None:
    """``offset`` and ``limit`` of a plain page (defaults 0 and 100); None for anything else."""
    found = {"offset": 0, "limit": 100}
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else []
    if len(pairs) > 2 or len({name for name, _ in pairs}) != len(pairs):
        return None
    for name, value in pairs:
        if name not in found or not ((value.isdecimal() and value.isascii()) or value == "-1"):
            return None
        found[name] = int(value)
    offset, limit = found["offset"], found["limit"]
    if not 0 <= offset <= _MAX_OFFSET or not (limit == -1 or 1 <= limit <= MAX_PAGE):
        return None
    return offset, limit


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])


def _agent(query: bytes) -> str | bool | None:
    """The ``agent`` query parameter: None when absent, False when FastAPI should judge it.

    Anything but no query or one valid ``agent=`` (a repeated or unknown parameter, an
    invalid value) goes to the declared route, which answers exactly as it always did.
    """
    if not query:
        return None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) == 1 and pairs[0][0] == "agent" and pairs[0][1] in AGENTS:
        return pairs[0][1]
    return False


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body's declared ``Content-Length``; None when chunked, absent or malformed."""
    length = None
    for name, value in headers:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            return None
    return length


async def _read_body(receive: Receive) -> bytes | None:
    """The request body (the server frames it by its declared length); None on a disconnect."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)

"""Who may call what: one rule per route, attached per router and kept in one rule book.

A router is included with :meth:`RuleBook.include`, which both attaches the guard (a
dependency that runs before any of the route's own) and records the rule, so what is
enforced and what the book says cannot drift apart. ``create_app`` refuses to build an app
with a route the book does not cover, and a test walks every route the same way.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, NoReturn

import fastapi.routing
from fastapi import APIRouter, Depends, FastAPI, Query
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, WebSocketRoute

from hookagent.api.auth.origin import UNSAFE_METHODS, same_origin
from hookagent.api.auth.tokens import Principal, Role, TokenTable
from hookagent.api.errors import error_response, http_status, ws_close_code
from hookagent.errors import Forbidden, ForeignOrigin, HookagentError, Unauthenticated
from hookagent.settings import Settings
from hookagent.store import Store

CHALLENGE = 'Bearer realm="hookagent"'
# The web UI's session (POST /ui/session): HttpOnly, SameSite=Strict, see routes/session.py.
SESSION_COOKIE = "hookagent_session"


class Access(enum.StrEnum):
    """A route's rule: open to all, signed (webhooks check their signature), or a role."""

    OPEN = "open"
    SIGNED = "signed"
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def role(self) -> Role | None:
        """The least role the rule needs; None when it needs no token."""
        return None if self in (Access.OPEN, Access.SIGNED) else Role(self.value)


TicketQuery = Annotated[
    str | None,
    Query(description="single-use ticket from POST /auth/ticket, for browsers (never a token)"),
]


class Guard:
    """A router's role rule as a dependency: identifies the caller, then checks the role."""

    def __init__(self, role: Role) -> None:
        self.role = role

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.role.value!r})"

    async def __call__(self, conn: HTTPConnection) -> None:
        await admit(conn, self.role, ticket=None)


class StreamGuard(Guard):
    """A :class:`Guard` that also takes a ticket, for ``EventSource`` and browser WebSockets."""

    async def __call__(self, conn: HTTPConnection, ticket: TicketQuery = None) -> None:
        await admit(conn, self.role, ticket=ticket)


async def admit(conn: HTTPConnection, needed: Role, *, ticket: str | None) -> Principal:
    """The caller, if its role allows ``needed``; Unauthenticated or Forbidden otherwise."""
    principal = await _identify(conn, ticket)
    if not principal.role.allows(needed):
        why = f"this needs the {needed} role; {principal.name} is {principal.role}"
        _deny(conn, Forbidden(why))
    conn.state.principal = principal
    return principal


async def _identify(conn: HTTPConnection, ticket: str | None) -> Principal:
    tokens: TokenTable = conn.app.state.tokens
    if not tokens:
        # No tokens: the server refused to start unless it serves loopback (or was told to).
        host = conn.client.host if conn.client else "unknown"
        return Principal(name=f"anonymous ({host})", role=Role.ADMIN)
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        found = tokens.match(token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            _deny(conn, Unauthenticated("the API token is not one this server knows"))
        return found
    if ticket:
        store: Store = conn.app.state.store
        held = await store.tickets.redeem(ticket)
        if held is None:
            _deny(conn, Unauthenticated("the ticket is unknown, used or expired"))
        return Principal(name=held[1], role=Role(held[0]))
    session_id = conn.cookies.get(SESSION_COOKIE)
    if session_id:
        return await _from_session(conn, tokens, session_id)
    _deny(conn, Unauthenticated("this needs an API token: send Authorization: Bearer <token>"))


async def _from_session(conn: HTTPConnection, tokens: TokenTable, session_id: str) -> Principal:
    store: Store = conn.app.state.store
    session = await store.sessions.find(session_id)
    # The token's current entry: a revoked token's sessions end, a changed role applies.
    found = tokens.match_digest(bytes.fromhex(session.token_digest)) if session else None
    if found is None:
        _deny(conn, Unauthenticated("the session is unknown or expired; sign in again"))
    refuse_foreign_cookie_change(conn)
    return found


def refuse_foreign_cookie_change(conn: HTTPConnection) -> None:
    """403 ``forbidden_origin`` for a state change by cookie whose ``Origin`` is not ours.

    Every POST, PUT, PATCH, DELETE and WebSocket upgrade the session cookie authenticates
    passes here: the guard's, and sign-out's (an open route that reads the cookie itself).
    """
    changes = conn.scope["type"] == "websocket" or conn.scope["method"] in UNSAFE_METHODS
    settings: Settings = conn.app.state.settings
    origin = conn.headers.get("origin")
    if changes and not same_origin(origin, conn.headers.get("host", ""), settings.public_url):
        # SameSite=Strict already keeps the cookie off other sites' requests; a browser
        # always sends Origin on these, so one missing or foreign is not our page.
        _deny(conn, ForeignOrigin("a request signed in by cookie must come from this server"))


def _deny(conn: HTTPConnection, exc: HookagentError) -> NoReturn:
    if conn.scope["type"] == "websocket":
        raise WebSocketException(code=ws_close_code(exc), reason=exc.message)
    raise exc


def principal_of(conn: HTTPConnection) -> Principal:
    """Who the request acts as; a route reached without a guard is refused, not anonymous."""
    principal: Principal | None = getattr(conn.state, "principal", None)
    if principal is None:
        raise Unauthenticated("this route has no access rule")
    return principal


async def access_denied(request: Request, exc: Exception) -> JSONResponse:
    """The refusal in the API's JSON error shape; with ``WWW-Authenticate`` when unauthenticated."""
    if not isinstance(exc, Unauthenticated | Forbidden):
        raise exc
    response = error_response(http_status(exc), exc.code, exc.message)
    if isinstance(exc, Unauthenticated):
        invalid = ', error="invalid_token"' if "authorization" in request.headers else ""
        response.headers["WWW-Authenticate"] = CHALLENGE + invalid
    return response


def route_keys(route: Any) -> list[str]:
    """``"GET /path"`` per method, ``"WEBSOCKET /path"`` or ``"MOUNT /path"`` for one route."""
    original = getattr(route, "original_route", route)
    path = getattr(route, "path", "?")
    if isinstance(original, Mount):
        return [f"MOUNT {path}"]
    if isinstance(original, WebSocketRoute):
        return [f"WEBSOCKET {path}"]
    methods = getattr(route, "methods", None)
    return [f"{method} {path}" for method in sorted(methods)] if methods else [f"ANY {path}"]


def served(app: FastAPI) -> list[str]:
    """The key of everything ``app`` routes, included routers flattened."""
    # FastAPI ≥ 0.16x keeps included routers as branches; older versions list routes flat.
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = list(walk(app.routes)) if walk is not None else list(app.routes)
    return [key for route in routes for key in route_keys(route)]


class RuleBook:
    """Every route's rule, recorded where the rule is attached."""

    def __init__(self) -> None:
        self._rules: dict[str, Access] = {}

    def __repr__(self) -> str:
        return f"RuleBook({len(self._rules)} rules)"

    def include(
        self, app: FastAPI, router: APIRouter, access: Access, *, tickets: bool = False
    ) -> None:
        """Include ``router`` in ``app`` with ``access`` enforced on each of its routes."""
        role = access.role
        guard = None if role is None else (StreamGuard(role) if tickets else Guard(role))
        app.include_router(router, dependencies=[Depends(guard)] if guard else None)
        for route in router.routes:
            for key in route_keys(route):
                self._rules[key] = access

    def allow(self, key: str, access: Access) -> None:
        """Record the rule of a route not added through :meth:`include` (it must need no role)."""
        if access.role is not None:
            raise ValueError(f"{key}: a role rule must be attached with include()")
        self._rules[key] = access

    def allow_router(self, router: APIRouter, access: Access) -> None:
        """Record ``access`` for the routes of a router included elsewhere (it needs no role)."""
        for route in router.routes:
            for key in route_keys(route):
                self.allow(key, access)

    def rule(self, key: str) -> Access | None:
        """The rule of ``"METHOD /path"``, or None when there is none."""
        return self._rules.get(key)

    def missing(self, app: FastAPI) -> list[str]:
        """Routes of ``app`` the book has no rule for: each one is a hole."""
        return [key for key in served(app) if key not in self._rules]

"""The web UI's sign-in: an API token traded for a session cookie, and who the browser is.

These routes are open in the rule book because they handle credentials themselves:
``POST /ui/session`` checks the token against the same token book as the API,
``GET /ui/me`` runs the same guard as every protected route, and ``DELETE /ui/session``
the guard's Origin check when the cookie is what it acts on.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from starlette.requests import Request

from hookagent.api.auth import (
    SESSION_COOKIE,
    Principal,
    Role,
    RuleBook,
    TokenTable,
    admit,
    refuse_foreign_cookie_change,
    token_digest,
)
from hookagent.api.deps import SettingsDep, StoreDep, client_address
from hookagent.api.errors import NO_CONTENT
from hookagent.api.routes.ui import USER_ACTIONS
from hookagent.errors import RateLimited, Unauthenticated
from hookagent.settings import Settings

router = APIRouter(prefix="/ui", tags=["ui"])
ANONYMOUS = Principal(name="anonymous", role=Role.ADMIN)
MAX_TOKEN_CHARS = 512


class SignIn(BaseModel):
    """An API token, as ``Authorization: Bearer`` would carry it."""

    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)


class Me(BaseModel):
    """Who the browser acts as and which of the UI's actions that role may use."""

    name: str
    role: Role
    anonymous: bool
    can: dict[str, bool]


def _me(request: Request, principal: Principal, *, anonymous: bool) -> Me:
    rules: RuleBook = request.app.state.rules
    can: dict[str, bool] = {}
    for name in USER_ACTIONS:
        # Read from the rule book that guards the action: the UI cannot drift from it.
        rule = rules.rule(f"POST /tasks/{{task_id}}/{name}")
        needed = rule.role if rule is not None else Role.ADMIN
        can[name] = rule is not None and (needed is None or principal.role.allows(needed))
    return Me(name=principal.name, role=principal.role, anonymous=anonymous, can=can)


def _secure(request: Request, settings: Settings) -> bool:
    """Whether the cookie must be ``Secure``: served over https, or published as https."""
    return request.url.scheme == "https" or settings.public_url.lower().startswith("https://")


@router.post("/session")
async def sign_in(
    body: SignIn, request: Request, response: Response, store: StoreDep, settings: SettingsDep
) -> Me:
    """Check the token and set the ``hookagent_session`` cookie (HttpOnly, SameSite=Strict)."""
    response.headers["Cache-Control"] = "no-store"
    tokens: TokenTable = request.app.state.tokens
    if not tokens:
        return _me(request, ANONYMOUS, anonymous=True)
    address = client_address(request)
    counted = await store.signins.count(f"signin:{address}")
    if not counted.allowed:
        raise RateLimited(
            "too many sign-in attempts from this address; try again in a minute",
            retry_after_s=counted.retry_after_s,
        )
    digest = token_digest(body.token.strip())
    principal = tokens.match_digest(digest)
    if principal is None:
        raise Unauthenticated("the token is not one this server knows")
    session_id = await store.sessions.start(token_digest=digest.hex())
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=store.sessions.max_seconds,
        path="/",
        secure=_secure(request, settings),
        httponly=True,
        samesite="strict",
    )
    return _me(request, principal, anonymous=False)


@router.delete("/session", status_code=NO_CONTENT)
async def sign_out(request: Request, store: StoreDep, settings: SettingsDep) -> Response:
    """End the browser's session and expire its cookie (by cookie: from our own page only)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if "authorization" in request.headers:
        # A bearer token is no ambient credential: no Origin needed, but it must be valid.
        await admit(request, Role.VIEWER, ticket=None)
    elif session_id:
        refuse_foreign_cookie_change(request)
    if session_id:
        await store.sessions.end(session_id)
    response = Response(status_code=NO_CONTENT, headers={"Cache-Control": "no-store"})
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=_secure(request, settings),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/me")
async def who_am_i(request: Request, response: Response) -> Me:
    """The caller (by session cookie or bearer token); an admin named anonymous without tokens."""
    response.headers["Cache-Control"] = "no-store"
    if not request.app.state.tokens:
        return _me(request, ANONYMOUS, anonymous=True)
    principal = await admit(request, Role.VIEWER, ticket=None)
    return _me(request, principal, anonymous=False)

"""API access control: tokens and roles, stream tickets, the Origin check, CORS."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from hookagent.api.auth.guard import (
    SESSION_COOKIE,
    Access,
    Guard,
    RuleBook,
    StreamGuard,
    access_denied,
    admit,
    principal_of,
    refuse_foreign_cookie_change,
    served,
)
from hookagent.api.auth.origin import OriginMiddleware
from hookagent.api.auth.tokens import (
    Principal,
    Role,
    TokenTable,
    load_tokens,
    parse_tokens,
    token_digest,
)
from hookagent.errors import Forbidden, Unauthenticated
from hookagent.settings import Settings

__all__ = [
    "SESSION_COOKIE",
    "Access",
    "Guard",
    "OriginMiddleware",
    "Principal",
    "Role",
    "RuleBook",
    "StreamGuard",
    "TokenTable",
    "admit",
    "install_access",
    "load_tokens",
    "parse_tokens",
    "principal_of",
    "refuse_foreign_cookie_change",
    "served",
    "token_digest",
]


def install_access(app: FastAPI, settings: Settings) -> RuleBook:
    """Load the tokens, add CORS if configured; the rule book to fill.

    The Origin check (:class:`OriginMiddleware`) runs in the app's front layer (api/front.py).
    """
    app.state.tokens = load_tokens(settings)
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            # Bearer tokens, not cookies: browsers need no credentials mode.
            allow_credentials=False,
            max_age=600,
        )
    app.add_exception_handler(Unauthenticated, access_denied)
    app.add_exception_handler(Forbidden, access_denied)
    rules = RuleBook()
    app.state.rules = rules
    return rules

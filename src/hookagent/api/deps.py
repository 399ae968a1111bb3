"""Request dependencies as ``Annotated`` aliases: store, settings and caller of a request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from starlette.requests import HTTPConnection

from hookagent.api.auth import Principal, principal_of
from hookagent.api.logfilter import LogFilter
from hookagent.policy import Policies
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.feed import FeedHub

# Offsets are log sequence numbers; past 2**53 they are neither real nor exact in JSON,
# and unbounded ones reached Redis as invalid stream ids.
MAX_OFFSET = 2**53
Q_MAX_CHARS = 500

# The dependencies are ``async def`` although none awaits: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hop per request (and per dependency) for an
# attribute read, which cost webhook intake a tenth of its time.


async def get_store(request: HTTPConnection) -> Store:
    """The store built by the app's lifespan."""
    store: Store = request.app.state.store
    return store


async def get_settings_dep(request: HTTPConnection) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_redactor(request: HTTPConnection) -> Redactor:
    """The redactor of every configured secret, built once with the app."""
    redactor: Redactor = request.app.state.redactor
    return redactor


def get_policies(request: HTTPConnection) -> Policies:
    """The app's approval policies (one reader of the file, reloaded when it changes)."""
    policies: Policies = request.app.state.policies
    return policies


async def _policies_dep(request: HTTPConnection) -> Policies:
    return get_policies(request)


async def get_feeds(request: HTTPConnection) -> FeedHub:
    """The app's live-feed hub (one XREAD loop per followed task)."""
    feeds: FeedHub = request.app.state.feeds
    return feeds


def client_address(conn: HTTPConnection) -> str:
    """The client's address as this server sees it: the one place that decides it."""
    return conn.client.host if conn.client else "unknown"


async def get_principal(request: HTTPConnection) -> Principal:
    """Who the request acts as, as the router's guard found it."""
    return principal_of(request)


async def get_filter(
    stream: Annotated[list[str] | None, Query(description="stdout, stderr, system, setup")] = None,
    kind: Annotated[list[str] | None, Query(description="repeatable: text, tool_use, …")] = None,
    level: Annotated[str | None, Query(description="info, warning, error")] = None,
    q: Annotated[
        str | None, Query(max_length=Q_MAX_CHARS, description="substring, any case")
    ] = None,
    regex: Annotated[str | None, Query(description="bounded regular expression")] = None,
) -> LogFilter:
    """The log filter given by query parameters (422 when one is invalid)."""
    return LogFilter.build(stream=stream or (), kind=kind or (), level=level, q=q, regex_text=regex)


StoreDep = Annotated[Store, Depends(get_store)]
FeedsDep = Annotated[FeedHub, Depends(get_feeds)]
FilterDep = Annotated[LogFilter, Depends(get_filter)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedactorDep = Annotated[Redactor, Depends(get_redactor)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
PoliciesDep = Annotated[Policies, Depends(_policies_dep)]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="an entry's seq")]

"""The FastAPI application factory."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from hookagent.api.access_log import AccessLog
from hookagent.api.auth import Access, install_access
from hookagent.api.errors import install_error_handlers
from hookagent.api.front import Front
from hookagent.api.routes import (
    actions,
    board,
    docs,
    health,
    metrics,
    policies,
    search,
    session,
    slack,
    stats,
    stream,
    tasks,
    tickets,
    ui,
    webhooks,
    workers,
)
from hookagent.api.routes.docs import install_docs
from hookagent.api.routes.health import SharedPing
from hookagent.errors import HookagentError
from hookagent.policy import load_policies
from hookagent.secret_values import build_redactor
from hookagent.services.intake import Intake
from hookagent.settings import Settings
from hookagent.store import Client, Store, connect
from hookagent.store.feed import FEED_SOCKET_TIMEOUT_S, FeedHub


class App(FastAPI):
    """FastAPI behind one front layer (api/front.py), which serves the hot routes itself."""

    front: Front | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every connection enters through the front layer once ``create_app`` set it."""
        if self.front is None:
            await super().__call__(scope, receive, send)
            return
        await self.front(scope, receive, send)


def create_app(
    settings: Settings, *, redis: Client | None = None, access: AccessLog | None = None
) -> App:
    """An app bound to ``settings``; it owns its Redis client unless one is passed in.

    ``access``: where the front layer writes a line per HTTP request (the server's stdout).
    """
    if redis is None and not settings.redis_url:
        raise HookagentError(
            "HOOKAGENT_REDIS_URL is not set (use `hookagent up` for the embedded store)"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = (
            redis
            if redis is not None
            else connect(str(settings.redis_url), cluster=settings.redis_cluster)
        )
        blocking = (
            connect(
                settings.redis_url,
                cluster=settings.redis_cluster,
                socket_timeout=FEED_SOCKET_TIMEOUT_S,
                client_name=f"{settings.key_prefix}:feed",
            )
            if settings.redis_url
            else client
        )
        store = Store.build(client, settings)
        app.state.store = store
        app.state.ping = SharedPing(store)
        app.state.intake = Intake(
            store, settings, policies=app.state.policies, redactor=app.state.redactor
        )
        app.state.feeds = FeedHub(blocking, store.keys, logs=store.logs, tasks=store.tasks)
        try:
            yield
        finally:
            await app.state.feeds.close()
            if blocking is not client:
                await blocking.aclose()
            if redis is None:
                await client.aclose()

    app = App(
        title="hookagent",
        summary="Webhooks to coding-agent tasks, with live logs.",
        version="0.1.0",
        lifespan=lifespan,
        redirect_slashes=False,
        # Served by routes/docs.py from local files; FastAPI's defaults need a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.redactor = build_redactor(settings)
    app.state.policies = load_policies(settings)
    install_error_handlers(app)
    rules = install_access(app, settings)
    # The access rule of every route: the README's roles table says the same.
    # Probes and deliveries first: routes are matched in this order, and they come most often.
    rules.include(app, health.router, Access.OPEN)
    rules.include(app, webhooks.router, Access.SIGNED)
    rules.include(app, slack.router, Access.SIGNED)  # Slack's request signature
    # The board's endpoints first: /tasks/events and /tasks/counts are not task ids.
    rules.include(app, board.router, Access.VIEWER, tickets=True)
    rules.include(app, tasks.router, Access.VIEWER)
    rules.include(app, actions.router, Access.OPERATOR)
    rules.include(app, stream.router, Access.VIEWER, tickets=True)
    rules.include(app, search.router, Access.VIEWER)
    rules.include(app, tickets.router, Access.VIEWER)
    rules.include(app, workers.router, Access.VIEWER)
    rules.include(app, policies.router, Access.VIEWER)
    # Scrapers send a viewer token like any reader: the numbers describe every task.
    rules.include(app, metrics.router, Access.VIEWER)
    rules.include(app, stats.router, Access.VIEWER)
    # Page shells, static assets and the transition table hold no data: the data they
    # show comes from the API, under its own rules.
    rules.include(app, ui.router, Access.OPEN)
    # Sign-in and "who am I" handle credentials themselves (the token book, the guard).
    rules.include(app, session.router, Access.OPEN)
    install_docs(app)
    rules.allow_router(docs.router, Access.OPEN)
    rules.allow(f"MOUNT {docs.STATIC_URL}", Access.OPEN)
    rules.allow(f"GET {app.openapi_url}", Access.OPEN)
    rules.allow(f"HEAD {app.openapi_url}", Access.OPEN)
    if missing := rules.missing(app):
        # Fail closed: a route nobody gave a rule would otherwise be served to anyone.
        raise HookagentError(f"routes without an access rule: {', '.join(missing)}")
    # Outermost: every layer, and the access log, sees the same client address.
    app.front = Front(
        functools.partial(FastAPI.__call__, app),
        app,
        settings,
        allowed_origins=[*settings.cors_origin_list, settings.public_url],
        access=access,
    )
    return app

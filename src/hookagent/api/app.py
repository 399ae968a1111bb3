"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from hookagent.api.errors import install_error_handlers
from hookagent.api.limits import BodyLimitMiddleware
from hookagent.api.routes import actions, health, search, slack, stream, tasks, webhooks
from hookagent.api.routes.docs import install_docs
from hookagent.errors import HookagentError
from hookagent.secret_values import build_redactor
from hookagent.settings import Settings
from hookagent.store import Store, connect
from hookagent.store.feed import FeedHub


def create_app(settings: Settings, *, redis: Redis | None = None) -> FastAPI:
    """An app bound to ``settings``; it owns its Redis client unless one is passed in."""
    if redis is None and not settings.redis_url:
        raise HookagentError(
            "HOOKAGENT_REDIS_URL is not set (use `hookagent up` for the embedded store)"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis if redis is not None else connect(str(settings.redis_url))
        blocking = connect(settings.redis_url) if settings.redis_url else client
        store = Store.build(client, settings)
        app.state.store = store
        app.state.feeds = FeedHub(blocking, store.keys, logs=store.logs, tasks=store.tasks)
        try:
            yield
        finally:
            await app.state.feeds.close()
            if blocking is not client:
                await blocking.aclose()
            if redis is None:
                await client.aclose()

    app = FastAPI(
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
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(webhooks.router)
    app.include_router(slack.router)  # authenticated by Slack's request signature
    app.include_router(tasks.router)
    app.include_router(actions.router)
    app.include_router(stream.router)
    app.include_router(search.router)
    app.include_router(health.router)
    install_docs(app)
    return app

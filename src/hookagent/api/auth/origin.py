"""Refuses state-changing requests and WebSocket upgrades sent by another site's page.

A browser sends ``Origin`` with every cross-site POST and WebSocket; webhook senders and
the CLI send none. A foreign origin is refused before the app runs, whatever the token.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from hookagent.api.errors import send_error
from hookagent.errors import ForeignOrigin
from hookagent.settings import is_loopback

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased, no trailing slash."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(origin: str | None, host: str, public_url: str) -> bool:
    """Whether ``origin`` is this server's own: its public URL's, or the ``Host`` served."""
    if not origin:
        return False
    if origin_of(origin) == origin_of(public_url):
        return True
    netloc = urlsplit(origin.strip()).netloc.lower()
    return bool(netloc) and netloc == host.strip().lower()


class OriginMiddleware:
    """``forbidden_origin`` for an ``Origin`` that is neither ours nor configured."""

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str], anonymous: bool) -> None:
        self.app = app
        self.allowed = frozenset(origin_of(o) for o in allowed)
        # Without tokens, a page whose host name was rebound to 127.0.0.1 would look like
        # our own origin (Origin and Host agree); only loopback names count as ours then.
        self.anonymous = anonymous

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        foreign = self.foreign(scope)
        if foreign is not None:
            await self.refuse(scope, send, foreign)
            return
        await self.app(scope, receive, send)

    def foreign(self, scope: Scope) -> str | None:
        """The ``Origin`` of a state-changing request or upgrade we must refuse, else None."""
        checked = scope["type"] == "websocket" or (
            scope["type"] == "http" and scope["method"] in UNSAFE_METHODS
        )
        if not checked:
            return None
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        if origin is None:
            return None
        host = headers.get(b"host", b"").decode("latin-1")
        return None if self._trusted(origin.decode("latin-1"), host) else origin.decode("latin-1")

    def _trusted(self, origin: str, host: str) -> bool:
        if origin_of(origin) in self.allowed:
            return True
        netloc = urlsplit(origin.strip()).netloc.lower()
        if not netloc or netloc != host.strip().lower():
            return False
        return not self.anonymous or is_loopback(urlsplit(origin.strip()).hostname or "")

    async def refuse(self, scope: Scope, send: Send, origin: str) -> None:
        """Answer ``forbidden_origin`` (or close the WebSocket) for ``origin``."""
        refused = ForeignOrigin(f"requests from the page at {origin[:200]!r} are not allowed here")
        await send_error(scope, send, refused, reason="forbidden origin")

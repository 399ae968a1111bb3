"""The client's address: the peer's, or what a trusted reverse proxy says it forwarded.

``X-Forwarded-For`` is whatever the sender wrote, so it is read only when the peer is in
``HOOKAGENT_TRUSTED_PROXIES``. Each proxy appends the address it received from; read from
the right, the first address that is not a trusted proxy is the client. The address is
written into the ASGI scope, in place, before anything else runs: the sign-in throttle, the
anonymous actor's name and uvicorn's access log (which reads the same scope) all see one
address. uvicorn's own proxy handling is off (``proxy_headers=False`` in cli/service.py): it
trusts loopback peers by default.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from hookagent.settings import IPNetwork

_SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss")}


class ForwardedMiddleware:
    """Replaces the peer address with the forwarded client's when the peer is trusted."""

    def __init__(self, app: ASGIApp, *, trusted: Iterable[IPNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.rewrite(scope)
        await self.app(scope, receive, send)

    def rewrite(self, scope: Scope) -> None:
        """Write the forwarded client (and scheme) into ``scope`` when the peer is trusted."""
        client = scope.get("client")
        if self.trusted and scope["type"] in ("http", "websocket") and client:
            if self._is_trusted(client[0]):
                self._forward(scope)

    def _is_trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:  # a Unix socket's peer, say: no address to trust
            return False
        return any(address in network for network in self.trusted)

    def _forward(self, scope: Scope) -> None:
        hops: list[str] = []
        proto = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                hops += value.decode("latin-1").split(",")
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").strip().lower()
        client = forwarded_client(hops, self._is_trusted)
        if client is not None:
            scope["client"] = (client, 0)
        if proto in _SCHEMES:
            # The proxy terminated TLS: the session cookie must then be Secure.
            scope["scheme"] = _SCHEMES[proto][scope["type"] == "websocket"]


def forwarded_client(hops: list[str], is_trusted: Callable[[str], bool]) -> str | None:
    """The right-most hop that is not a trusted proxy (all trusted: the left-most).

    A hop that is not an IP address ends the walk: a proxy writes the address it received
    from, so anything else was written by the sender. None when no hop is usable.
    """
    last: str | None = None
    for hop in reversed([h for h in hops if h.strip()]):
        address = _address(hop)
        if address is None:
            return last
        if not is_trusted(address):
            return address
        last = address
    return last


def _address(hop: str) -> str | None:
    """``hop`` as an IP address, without the port some proxies add (``1.2.3.4:80``)."""
    text = hop.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None

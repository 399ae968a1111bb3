"""Single-use stream tickets: a browser trades its token for one, then opens SSE or WebSocket.

``EventSource`` and ``WebSocket`` in a browser cannot send an ``Authorization`` header, and a
long-lived token in a URL ends up in proxy logs and browser history. A ticket is random,
lives a few seconds, and is deleted by the request that redeems it (``GETDEL``: one round
trip, so two requests racing with one ticket cannot both win). Redis holds only the ticket's
SHA-256, so a dump of the database holds no usable ticket.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from hookagent.store.client import Client
from hookagent.store.keys import Keys

# Long enough for a browser to open the stream it asked the ticket for, short enough that
# one copied out of a URL is useless by the time anyone reads it.
TICKET_TTL_S = 30


class TicketStore:
    """Issue and redeem the tickets that stand in for a token on one stream request."""

    def __init__(self, redis: Client, keys: Keys, *, ttl_seconds: int = TICKET_TTL_S) -> None:
        self._redis: Any = redis
        self._keys = keys
        self.ttl_seconds = ttl_seconds

    def key_of(self, ticket: str) -> str:
        """The key a ticket is stored under (named by its digest)."""
        return self._keys.ticket(hashlib.sha256(ticket.encode()).hexdigest())

    async def issue(self, *, role: str, name: str) -> str:
        """A fresh ticket that redeems once, within the TTL, as ``role`` named ``name``."""
        ticket = secrets.token_urlsafe(32)
        holder = json.dumps({"role": role, "name": name})
        await self._redis.set(self.key_of(ticket), holder, ex=self.ttl_seconds, nx=True)
        return ticket

    async def redeem(self, ticket: str) -> tuple[str, str] | None:
        """``(role, name)`` of a live ticket, which is gone afterwards; None if unknown or used."""
        raw = await self._redis.getdel(self.key_of(ticket))
        if raw is None:
            return None
        holder = json.loads(raw)
        return str(holder["role"]), str(holder["name"])

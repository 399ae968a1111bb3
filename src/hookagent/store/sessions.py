"""Web UI sessions: a browser trades an API token for an HttpOnly cookie naming one of these.

A session id is 32 random bytes; Redis holds only its SHA-256, so a dump of the database
holds no usable cookie. The record names the token by its digest (as a configuration may
write it), so the API can check on every request that the token is still configured, and
with which role: revoking or rotating a token ends its sessions at once. A session lasts
``HOOKAGENT_SESSION_TTL`` seconds from its last use (``GETEX`` reads and renews it in one
step) and never more than ``HOOKAGENT_SESSION_MAX_AGE`` from sign-in.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from hookagent.store.client import Client
from hookagent.store.keys import Keys

# Tokens are long and random, so this is hygiene against floods, not the defence itself.
SIGNIN_ATTEMPTS_PER_MINUTE = 10


@dataclass(frozen=True, slots=True)
class Session:
    """What a live session stands for: the SHA-256 (hex) of the token that signed it in."""

    token_digest: str
    started_at: int


class SessionStore:
    """Start, look up and end the sessions behind the web UI's cookie."""

    def __init__(
        self,
        redis: Client,
        keys: Keys,
        *,
        idle_seconds: int,
        max_seconds: int,
    ) -> None:
        self._redis: Any = redis
        self._keys = keys
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds

    def key_of(self, session_id: str) -> str:
        """The key a session is stored under (named by the digest of its id)."""
        return self._keys.session(hashlib.sha256(session_id.encode()).hexdigest())

    async def start(self, *, token_digest: str) -> str:
        """A new session id for the token whose SHA-256 (hex) is ``token_digest``."""
        session_id = secrets.token_urlsafe(32)
        record = json.dumps({"token": token_digest, "at": int(time.time())})
        await self._redis.set(self.key_of(session_id), record, ex=self.idle_seconds, nx=True)
        return session_id

    async def find(self, session_id: str) -> Session | None:
        """The live session ``session_id`` names, renewed for another idle period; else None."""
        key = self.key_of(session_id)
        raw = await self._redis.getex(key, ex=self.idle_seconds)
        if raw is None:
            return None
        record = json.loads(raw)
        started = int(record["at"])
        left = started + self.max_seconds - int(time.time())
        if left <= 0:
            await self._redis.delete(key)
            return None
        if left < self.idle_seconds:
            # Renewal must not carry a session past its absolute end.
            await self._redis.expire(key, left)
        return Session(token_digest=str(record["token"]), started_at=started)

    async def end(self, session_id: str) -> None:
        """Forget ``session_id`` (signing out); unknown ids are ignored."""
        await self._redis.delete(self.key_of(session_id))

"""Whether a Redis demands credentials: ``hookagent doctor`` warns when it does not.

Everything of a task (prompts, plans, logs, tokens' redacted traces) sits in Redis; one
that answers anybody who reaches its port is one breach away from all of it.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlencode, urlsplit

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError

from hookagent.store import connect

_CREDENTIAL_PARAMS = ("username", "password")


def without_credentials(url: str) -> str:
    """``url`` with no user, password or ``?password=``: what a stranger would connect with."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    pairs = [(k, v) for k, v in parse_qsl(parts.query) if k.lower() not in _CREDENTIAL_PARAMS]
    query = f"?{urlencode(pairs)}" if pairs else ""
    # Put together by hand: urlunsplit would turn ``unix:///path`` into ``unix:/path``.
    return f"{parts.scheme}://{netloc}{parts.path}{query}"


async def open_to_anyone(url: str, *, timeout: float) -> bool | None:
    """Whether the server at ``url`` answers PING without credentials; None: no answer at all.

    A cluster node answers PING like a single server, so one node tells for the cluster.
    """
    redis: Redis = connect(without_credentials(url))
    try:
        async with asyncio.timeout(timeout):
            await redis.ping()
    except AuthenticationError:
        return False  # NOAUTH: a password is required
    except (RedisError, OSError, TimeoutError):
        return None
    finally:
        await redis.aclose()
    return True

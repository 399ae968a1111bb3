"""Web UI sessions last as long as HOOKAGENT_SESSION_TTL and HOOKAGENT_SESSION_MAX_AGE say."""

from __future__ import annotations

import json
import time

import pytest
from redis.asyncio import Redis

from hookagent.settings import Settings
from hookagent.store import Store

pytestmark = pytest.mark.store


async def test_session_lifetimes_come_from_the_settings(redis: Redis, prefix: str) -> None:
    own = Settings(key_prefix=prefix, session_ttl=120, session_max_age=600)
    sessions = Store.build(redis, own).sessions
    session_id = await sessions.start(token_digest="ab" * 32)
    key = sessions.key_of(session_id)
    assert 60 < await redis.ttl(key) <= 120, "idle period: HOOKAGENT_SESSION_TTL"
    await redis.expire(key, 30)
    assert await sessions.find(session_id) is not None
    assert 60 < await redis.ttl(key) <= 120, "each use renews it"

    # Signed in 570 s ago: renewal stops at HOOKAGENT_SESSION_MAX_AGE, 30 s from now.
    record = json.loads(str(await redis.get(key)))
    record["at"] = int(time.time()) - 600 + 30
    await redis.set(key, json.dumps(record), ex=120)
    assert await sessions.find(session_id) is not None
    assert 0 < await redis.ttl(key) <= 30
    record["at"] = int(time.time()) - 601
    await redis.set(key, json.dumps(record), ex=120)
    assert await sessions.find(session_id) is None
    assert await redis.exists(key) == 0


@pytest.mark.parametrize("field", ["session_ttl", "session_max_age"])
def test_a_session_lifetime_under_a_minute_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Settings(**{field: 59})  # type: ignore[arg-type]

"""`hookagent doctor` against a Redis Cluster."""

from __future__ import annotations

import pytest

from hookagent.cli.doctor import Level, check_redis
from hookagent.settings import Settings
from hookagent.store import Client, connect

pytestmark = pytest.mark.cluster


def test_doctor_reaches_the_cluster_and_says_so(settings: Settings, redis_url: str) -> None:
    redis, auth, workers = check_redis(settings)
    assert (redis.level, redis.message) == (
        Level.OK,
        f"{redis_url} answers PING (Redis Cluster: HOOKAGENT_REDIS_CLUSTER)",
    )
    assert auth.level is Level.WARN  # the test cluster answers a client without a password
    assert workers.level is Level.WARN  # no worker runs in this test


async def test_connect_gives_a_cluster_client_that_knows_the_primaries(redis_url: str) -> None:
    client: Client = connect(redis_url, cluster=True, client_name="hk-test")
    try:
        assert await client.ping()
        assert len(client.get_primaries()) == 3  # type: ignore[union-attr]
    finally:
        await client.aclose()

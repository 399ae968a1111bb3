"""The cluster tests' fixtures: the shared ones, pointed at a real Valkey Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hookagent.settings import Settings
from hookagent.store import Client, connect
from tests.cluster_nodes import ValkeyCluster


@pytest.fixture(scope="session")
def redis_url(valkey_cluster: ValkeyCluster) -> str:
    """Any node of the session's cluster (the client finds the rest)."""
    return valkey_cluster.url


@pytest.fixture
async def redis(redis_url: str, prefix: str) -> AsyncIterator[Client]:
    """A cluster client; afterwards deletes only the keys under this test's prefix."""
    client = connect(redis_url, cluster=True)
    yield client
    # SCAN on a cluster client walks every primary.
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    for key in keys:
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, in cluster mode."""
    return settings.model_copy(update={"redis_cluster": True})

"""Shared fixtures: a real Valkey/Redis, per-test key prefixes, git remotes, a worker."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import hypothesis
import pytest
from redis.asyncio import Redis

from hookagent.cli.embedded import EmbeddedValkey
from hookagent.settings import Settings
from hookagent.store import Store, connect
from hookagent.worker import Worker
from tests.cluster_nodes import ValkeyCluster, running_cluster
from tests.helpers import REPO, app_client, fake_agent, make_remote

# Fuzz tests: "dev" by default, "ci" (same inputs every run) when CI is set, "deep" to hunt,
# "fast" (a sixth of the inputs) for `make test-fast`.
# No deadline: 2 shared cores make timings noise; slow inputs get tests of their own.
hypothesis.settings.register_profile("dev", max_examples=300, deadline=None)
hypothesis.settings.register_profile(
    "ci", max_examples=300, deadline=None, derandomize=True, database=None, print_blob=True
)
hypothesis.settings.register_profile("deep", max_examples=2_000, deadline=None)
hypothesis.settings.register_profile("fast", max_examples=50, deadline=None)
hypothesis.settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HOOKAGENT_TEST_REDIS_URL if set, else an embedded Valkey for the whole session."""
    external = os.environ.get("HOOKAGENT_TEST_REDIS_URL")
    if external:
        yield external
        return
    with EmbeddedValkey(tmp_path_factory.mktemp("valkey")) as valkey:
        yield valkey.url


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """A real 3-primary, 3-replica Valkey Cluster on loopback, for the whole session."""
    with running_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
async def redis(redis_url: str, prefix: str) -> AsyncIterator[Redis]:
    """A client; afterwards deletes only the keys under this test's prefix."""
    client = connect(redis_url)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test (or user) shares."""
    return f"hktest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def remotes(tmp_path: Path) -> Path:
    """A directory of bare git remotes; ``acme/payments-api`` has a commit with a README."""
    root = tmp_path / "remotes"
    make_remote(root, REPO)
    return root


@pytest.fixture
def settings(redis_url: str, prefix: str, tmp_path: Path, remotes: Path) -> Settings:
    """Settings for one test: its own prefix, data dir, remotes and the fake agent."""
    return Settings(
        redis_url=redis_url,
        key_prefix=prefix,
        data_dir=tmp_path / "data",
        git_url_template=f"file://{remotes}/{{repo}}.git",
        agent="command",
        agent_command=fake_agent("echo"),
        planning_timeout=30,
        kill_grace=1,
        lease_seconds=5,
        log_flush_ms=20,
    )


@pytest.fixture
def store(redis: Redis, settings: Settings) -> Store:
    """Stores bound to this test's prefix."""
    return Store.build(redis, settings)


@pytest.fixture
async def client(settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the app in-process (lifespan run)."""
    async with app_client(settings, redis) as http:
        yield http


RunWorker = Callable[..., Worker]


@pytest.fixture
async def start_worker(store: Store, settings: Settings) -> AsyncIterator[RunWorker]:
    """Starts in-process worker loops (optionally with other settings); stops them after."""
    from hookagent.agents import build_agent

    stop = asyncio.Event()
    running: list[asyncio.Task[None]] = []

    def start(**overrides: object) -> Worker:
        own = settings.model_copy(update=overrides)
        worker = Worker(store=Store.build(store.redis, own), settings=own, agent=build_agent(own))
        running.append(asyncio.create_task(worker.run(stop)))
        return worker

    yield start
    stop.set()
    for task in running:
        task.cancel()
    await stopped(running)


# A worker cancelled must be gone well before the test's own timeout: one that is not has a
# cancel swallowed or an unbounded wait in its shutdown path, and the stacks say where.
WORKER_STOP_S = 30.0


async def stopped(running: list[asyncio.Task[None]]) -> None:
    """Wait for cancelled worker loops; fail with every live task's stack if one hangs."""
    try:
        async with asyncio.timeout(WORKER_STOP_S):
            await asyncio.gather(*running, return_exceptions=True)
    except TimeoutError:
        stacks = io.StringIO()
        for task in asyncio.all_tasks():
            task.print_stack(file=stacks)
        pytest.fail(
            f"a worker did not stop within {WORKER_STOP_S:.0f}s of its cancel:\n{stacks.getvalue()}"
        )

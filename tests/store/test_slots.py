"""Per-repository run slots: a limit across workers, a wait noted once, lapsing slots."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from hookagent.store import RepoSlots
from hookagent.store.keys import Keys

pytestmark = pytest.mark.store


def slots(redis: Redis, prefix: str, *, limit: int, ttl_ms: int = 60_000) -> RepoSlots:
    return RepoSlots(redis, Keys(prefix), limit=limit, ttl_ms=ttl_ms)


async def test_at_most_limit_runs_and_a_wait_is_news_once(redis: Redis, prefix: str) -> None:
    s = slots(redis, prefix, limit=2)
    assert (await s.take("acme/api", "run-a", "task-a")).held
    assert (await s.take("Acme/API", "run-b", "task-b")).held, "one repository, any case"
    assert (await s.take("acme/other", "run-x", "task-x")).held, "another repository"
    first = await s.take("acme/api", "run-c", "task-c")
    assert (first.held, first.running, first.first_wait) == (False, 2, True)
    assert not (await s.take("acme/api", "run-c2", "task-c")).first_wait
    assert (await s.take("acme/api", "run-a", "task-a")).held, "a holder may take it again"
    await s.release("acme/api", "run-a")
    got = await s.take("acme/api", "run-c3", "task-c")
    assert (got.held, got.running) == (True, 2)
    # Having run, the task is news again the next time it has to wait.
    assert (await s.take("acme/api", "run-c4", "task-c")).first_wait


async def test_renew_keeps_only_a_held_slot(redis: Redis, prefix: str) -> None:
    s = slots(redis, prefix, limit=1)
    assert (await s.take("acme/api", "run-a", "task-a")).held
    assert await s.renew("acme/api", "run-a")
    assert not await s.renew("acme/api", "run-b"), "renewing never takes a slot"
    assert not (await s.take("acme/api", "run-b", "task-b")).held


async def test_a_dead_workers_slot_lapses_by_itself(redis: Redis, prefix: str) -> None:
    s = slots(redis, prefix, limit=1, ttl_ms=100)
    assert (await s.take("acme/api", "run-dead", "task-a")).held  # never renewed nor released
    assert not (await s.take("acme/api", "run-b", "task-b")).held
    # The lapse is the thing under test: wait past it on the clock, no condition to wait on.
    await asyncio.sleep(0.25)
    assert (await s.take("acme/api", "run-b", "task-b")).held
    assert await redis.zrange(Keys(prefix).repo_runs("acme/api"), 0, -1) == ["run-b"]

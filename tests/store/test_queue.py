"""The Streams queue: delivery, lease renewal, reclaim and delivery counts."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from hookagent.keys import Keys
from hookagent.models import Phase
from hookagent.store import JobQueue

pytestmark = pytest.mark.store


def queue(redis: Redis, prefix: str, lease_ms: int = 300) -> JobQueue:
    return JobQueue(redis, Keys(prefix), name="planning-queue", lease_ms=lease_ms)


async def test_one_job_goes_to_one_consumer(redis: Redis, prefix: str) -> None:
    q = queue(redis, prefix, lease_ms=60_000)
    await q.ensure_group()
    await q.ensure_group()  # idempotent
    await q.enqueue("task-1-aa", Phase.PLAN)
    got = await asyncio.gather(*(q.claim(f"c{i}", block_ms=200) for i in range(5)))
    jobs = [j for j in got if j is not None]
    assert len(jobs) == 1
    assert (jobs[0].task_id, jobs[0].phase, jobs[0].deliveries) == ("task-1-aa", Phase.PLAN, 1)
    await q.ack(jobs[0])
    assert await q.pending_count() == 0


async def test_lapsed_lease_is_reclaimed_and_counted(redis: Redis, prefix: str) -> None:
    q = queue(redis, prefix, lease_ms=200)
    await q.ensure_group()
    await q.enqueue("task-1-bb", Phase.PLAN)
    first = await q.claim("dead", block_ms=100)
    assert first is not None
    assert await q.claim("alive", block_ms=50) is None  # still leased
    await asyncio.sleep(0.3)  # let the lease lapse: real time, no fake clock
    second = await q.claim("alive", block_ms=50)
    assert second is not None and second.job_id == first.job_id and second.deliveries == 2
    assert not await q.renew(first, "dead"), "the old owner must not steal it back"
    assert await q.renew(second, "alive")


async def test_renewal_keeps_the_job(redis: Redis, prefix: str) -> None:
    q = queue(redis, prefix, lease_ms=300)
    await q.ensure_group()
    await q.enqueue("task-1-cc", Phase.PLAN)
    job = await q.claim("owner", block_ms=100)
    assert job is not None
    for _ in range(4):
        await asyncio.sleep(0.1)
        assert await q.renew(job, "owner")
    assert await q.reclaim("thief") is None

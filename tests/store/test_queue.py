"""The Streams queue: delivery, lease renewal, reclaim and delivery counts."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis

from hookagent.keys import Keys
from hookagent.models import NewTask, Phase, TaskStatus
from hookagent.store import JobQueue, Store
from tests.conftest import RunWorker
from tests.helpers import REPO, wait_status

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


# Past redis-py 8's default socket timeout of 5 s, which a blocking read must outlast.
IDLE_S = 6.0


async def test_claim_blocks_past_the_socket_timeout(redis: Redis, prefix: str) -> None:
    q = queue(redis, prefix, lease_ms=60_000)
    await q.ensure_group()
    claim = asyncio.create_task(q.claim("idle", block_ms=10_000))
    await asyncio.sleep(IDLE_S)  # nothing to wait on: the point is to sit idle that long
    assert not claim.done(), claim.exception() if claim.done() else None
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await q.enqueue("task-1-dd", Phase.PLAN)
    job = await claim
    assert job is not None and job.task_id == "task-1-dd"
    assert loop.time() - sent < 0.5


async def test_idle_worker_logs_no_timeout_and_picks_up_at_once(
    store: Store, start_worker: RunWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await store.jobs.ensure_group()
    start_worker(lease_seconds=20)  # claims block for 10 s, past the socket timeout
    await asyncio.sleep(IDLE_S)  # an idle worker: nothing happens that could be waited on
    loop = asyncio.get_running_loop()
    sent = loop.time()
    new = NewTask(source="sentry", repository=REPO, title="t", prompt="p")
    task = await store.tasks.create(new, queue="planning-queue", job=(store.jobs.key, Phase.PLAN))
    await wait_status(store, task.task_id, {TaskStatus.DISCOVERING}, timeout=5)
    picked_up = loop.time() - sent
    finished = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
    await wait_status(store, task.task_id, finished)
    assert picked_up < 1.0
    assert [r.getMessage() for r in caplog.records if "Timeout" in r.getMessage()] == []

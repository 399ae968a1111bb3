"""The Streams queue: delivery, lease renewal, reclaim and delivery counts."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis

from hookagent.models import NewTask, Phase, TaskStatus
from hookagent.settings import Settings
from hookagent.store import JobQueue, Store
from tests.conftest import RunWorker
from tests.helpers import REPO, wait_status

pytestmark = pytest.mark.store


async def queue(redis: Redis, settings: Settings, lease_ms: int = 300) -> tuple[JobQueue, str]:
    """The job queue with the given lease, holding the planning job of one new task."""
    store = Store.build(redis, settings.model_copy(update={"lease_seconds": lease_ms / 1000}))
    await store.jobs.ensure_group()
    new = NewTask(source="test", repository="acme/payments-api", title="t", prompt="p")
    task = await store.tasks.create(new)
    return store.jobs, task.task_id


async def test_one_job_goes_to_one_consumer(redis: Redis, settings: Settings) -> None:
    q, task_id = await queue(redis, settings, lease_ms=60_000)
    await q.ensure_group()  # idempotent
    got = await asyncio.gather(*(q.claim(f"c{i}", block_ms=200) for i in range(5)))
    jobs = [j for j in got if j is not None]
    assert len(jobs) == 1
    assert (jobs[0].task_id, jobs[0].phase, jobs[0].deliveries) == (task_id, Phase.PLAN, 1)
    await q.ack(jobs[0])
    assert (await redis.xpending(q.key, "workers"))["pending"] == 0
    assert await redis.xlen(q.key) == 0


async def test_lapsed_lease_is_reclaimed_and_counted(redis: Redis, settings: Settings) -> None:
    q, _ = await queue(redis, settings, lease_ms=200)
    first = await q.claim("dead", block_ms=100)
    assert first is not None
    assert await q.claim("alive", block_ms=50) is None  # still leased
    await asyncio.sleep(0.3)  # let the lease lapse: real time, no fake clock
    second = await q.claim("alive", block_ms=50)
    assert second is not None and second.job_id == first.job_id and second.deliveries == 2
    assert not await q.renew(first, "dead"), "the old owner must not steal it back"
    assert await q.renew(second, "alive")


async def test_renewal_keeps_the_job(redis: Redis, settings: Settings) -> None:
    q, _ = await queue(redis, settings, lease_ms=300)
    job = await q.claim("owner", block_ms=100)
    assert job is not None
    for _ in range(4):
        await asyncio.sleep(0.1)
        assert await q.renew(job, "owner")
    assert await q.reclaim("thief") is None


async def test_a_deferred_job_comes_back_without_counting_a_delivery(
    redis: Redis, settings: Settings
) -> None:
    """Handing a job back for want of room is not a failed attempt: deliveries stay put."""
    q, task_id = await queue(redis, settings, lease_ms=60_000)
    job = await q.claim("first", block_ms=100)
    assert job is not None and job.deliveries == 1
    for consumer in ("second", "third"):
        await q.defer(job, "first" if consumer == "second" else "second", after_ms=0)
        again = await q.reclaim(consumer)
        assert again is not None and (again.task_id, again.deliveries) == (task_id, 1)
        job = again
    await q.defer(job, "third", after_ms=30_000)
    assert await q.reclaim("fourth") is None, "not before after_ms"


# Past redis-py 8's default socket timeout of 5 s, which a blocking read must outlast.
IDLE_S = 6.0


@pytest.mark.slow
async def test_claim_blocks_past_the_socket_timeout(store: Store) -> None:
    q = store.jobs
    await q.ensure_group()
    claim = asyncio.create_task(q.claim("idle", block_ms=10_000))
    await asyncio.sleep(IDLE_S)  # nothing to wait on: the point is to sit idle that long
    assert not claim.done(), claim.exception() if claim.done() else None
    loop = asyncio.get_running_loop()
    sent = loop.time()
    task = await store.tasks.create(NewTask(source="t", repository=REPO, title="t", prompt="p"))
    job = await claim
    assert job is not None and job.task_id == task.task_id
    assert loop.time() - sent < 0.5


@pytest.mark.slow
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
    task = await store.tasks.create(new)
    await wait_status(store, task.task_id, {TaskStatus.DISCOVERING}, timeout=5)
    picked_up = loop.time() - sent
    finished = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
    await wait_status(store, task.task_id, finished)
    assert picked_up < 1.0
    assert [r.getMessage() for r in caplog.records if "Timeout" in r.getMessage()] == []

"""A job's lease through a Redis outage: kept unless another worker truly took the job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hookagent.agents import build_agent
from hookagent.errors import LeaseLost
from hookagent.models import NewTask
from hookagent.settings import Settings
from hookagent.store import Job, Store, connect
from hookagent.store.keys import WORKER_GROUP
from hookagent.worker import Worker
from tests.netfault import Relay, relay

LEASE_S = 1.5  # renewed every 0.5 s
OUTAGE_S = 3.0  # past the lease and the client's socket timeout
TIMEOUT_S = 0.5


@pytest.fixture
async def cut(redis_url: str) -> AsyncIterator[Relay]:
    async with relay(redis_url) as r:
        yield r


@pytest.fixture
async def far(cut: Relay, settings: Settings) -> AsyncIterator[tuple[Worker, Store]]:
    """A worker whose Redis client goes through ``cut``, and its stores."""
    own = settings.model_copy(update={"lease_seconds": LEASE_S})
    client = connect(cut.url(), socket_timeout=TIMEOUT_S)
    store = Store.build(client, own)
    yield Worker(store=store, settings=own, agent=build_agent(own)), store
    await client.aclose()


async def claimed_job(store: Store, worker: Worker) -> Job:
    await store.jobs.ensure_group()
    new = NewTask(source="jira", repository="acme/x", title="t", prompt="p")
    await store.tasks.create(new)
    job = await store.jobs.claim(worker.name, block_ms=1000)
    assert job is not None
    return job


async def owner_and_idle_ms(store: Store, job: Job) -> tuple[str, int]:
    redis: Any = store.redis
    pending = await redis.xpending_range(
        store.jobs.key, WORKER_GROUP, min=job.job_id, max=job.job_id, count=1
    )
    return pending[0]["consumer"], int(pending[0]["time_since_delivered"])


async def test_an_outage_past_the_lease_does_not_stop_the_run(
    far: tuple[Worker, Store], store: Store, cut: Relay
) -> None:
    worker, its_store = far
    job = await claimed_job(its_store, worker)
    keeping = asyncio.create_task(worker._keep_lease(job, None, "token"))
    cut.freeze()
    done, _ = await asyncio.wait({keeping}, timeout=OUTAGE_S)
    assert not done, "renewals failed, and the run went on"
    assert (await owner_and_idle_ms(store, job))[1] > LEASE_S * 1000, "the lease ran out"
    cut.thaw()
    async with asyncio.timeout(5):
        # Renewed once Redis answers again (nothing announces it: look again, bounded).
        while (await owner_and_idle_ms(store, job))[1] > 1000:
            await asyncio.sleep(0.1)
    assert not keeping.done()
    keeping.cancel()
    await asyncio.gather(keeping, return_exceptions=True)


async def test_the_run_stops_when_another_worker_took_the_job_meanwhile(
    far: tuple[Worker, Store], store: Store, cut: Relay, settings: Settings
) -> None:
    worker, its_store = far
    other = Store.build(store.redis, settings.model_copy(update={"lease_seconds": LEASE_S}))
    job = await claimed_job(its_store, worker)
    keeping = asyncio.create_task(worker._keep_lease(job, None, "token"))
    cut.freeze()
    await asyncio.sleep(LEASE_S + 0.5)  # the outage: past the lease
    taken = await other.jobs.reclaim("another-worker")
    assert taken is not None and taken.job_id == job.job_id
    cut.thaw()
    with pytest.raises(LeaseLost):
        await asyncio.wait_for(keeping, timeout=5)
    assert (await owner_and_idle_ms(store, job))[0] == "another-worker"

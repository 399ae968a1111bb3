"""The worker registry with real in-process workers: appear, show the job, leave on stop."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid

import httpx

from hookagent import __version__
from hookagent.agents import build_agent
from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store, WorkerInfo
from hookagent.worker import Worker
from tests.conftest import RunWorker
from tests.helpers import FIXTURES, fake_agent, wait_for_line, wait_status

ALERT = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())


async def submit(client: httpx.AsyncClient) -> str:
    payload = json.loads(json.dumps(ALERT))
    payload["data"]["event"]["issue_id"] = uuid.uuid4().hex  # a new incident each time
    response = await client.post("/webhooks/sentry", json=payload)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def live(store: Store, name: str) -> WorkerInfo | None:
    found = [w for w in await store.workers.live(30) if w.name == name]
    return found[0] if found else None


async def test_a_busy_worker_shows_its_job_in_the_registry_and_on_workers(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    worker = start_worker(agent_command=fake_agent("hang"))
    tid = await submit(client)
    # The worker writes its busy record before it starts the agent, so once the agent
    # speaks the registry must already name the job.
    await wait_for_line(store, tid, "hanging now")
    info = await live(store, worker.name)
    assert info is not None
    assert (info.task_id, info.phase) == (tid, "plan")
    assert (info.host, info.pid, info.version) == (socket.gethostname(), os.getpid(), __version__)
    assert info.started_at.endswith("Z") and info.last_seen is not None

    listed = (await client.get("/workers")).json()
    assert listed["count"] == 1
    (row,) = listed["workers"]
    assert row["name"] == worker.name and row["task_id"] == tid and row["phase"] == "plan"
    assert row["pid"] == os.getpid() and row["last_seen"].endswith("Z")

    assert (await client.post(f"/tasks/{tid}/cancel")).status_code == 200
    assert await wait_status(store, tid, {TaskStatus.CANCELLED}) is TaskStatus.CANCELLED


async def test_a_worker_registers_with_a_ttl_and_deregisters_when_stopped(
    client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    stop = asyncio.Event()
    worker = Worker(store=store, settings=settings, agent=build_agent(settings))
    async with asyncio.TaskGroup() as group:
        running = group.create_task(worker.run(stop))
        tid = await submit(client)
        # It took the job, so it registered first; after the job it is idle again.
        await wait_status(store, tid, {TaskStatus.PENDING_APPROVAL})
        info = await live(store, worker.name)
        assert info is not None
        ttl = await store.redis.ttl(store.keys.worker(worker.name))
        assert 0 < ttl <= settings.worker_ttl
        stop.set()
    assert running.done() and running.exception() is None
    # Gone at once on a clean stop, not after the record's TTL.
    assert await live(store, worker.name) is None
    assert not await store.redis.exists(store.keys.worker(worker.name))
    assert await store.workers.count_live(30) == 0


async def test_a_cancelled_worker_deregisters_too(
    client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    # Shutdown past the grace period cancels the loop mid-job: the job is handed back and
    # the worker still leaves the registry.
    own = settings.model_copy(update={"agent_command": fake_agent("hang")})
    worker = Worker(store=store, settings=own, agent=build_agent(own))
    running = asyncio.create_task(worker.run(asyncio.Event()))
    tid = await submit(client)
    await wait_for_line(store, tid, "hanging now")
    assert (await live(store, worker.name)) is not None
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert running.cancelled()
    assert await live(store, worker.name) is None
    await wait_for_line(store, tid, "job handed back to the queue")

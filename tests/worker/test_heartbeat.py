"""The worker registry with real in-process workers: appear, show the job, leave on stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

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
    worker = start_worker(agent_command=fake_agent("slow", "5", "0.2"))
    tid = await submit(client)
    # The worker writes its busy record before it starts the agent, so once the agent
    # speaks the registry must already name the job.
    await wait_for_line(store, tid, "tick 0")
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
    # Let the job end on its own: the agent's pipes are read to the end before teardown.
    await wait_status(store, tid, {TaskStatus.PENDING_APPROVAL})


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


async def test_a_worker_process_stopped_mid_job_hands_it_back_and_deregisters(
    client: httpx.AsyncClient, store: Store, settings: Settings, tmp_path: Path
) -> None:
    # SIGTERM with no grace: the service cancels the loop mid-job, as past the grace period.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")} | {
        "HOOKAGENT_REDIS_URL": str(settings.redis_url),
        "HOOKAGENT_KEY_PREFIX": settings.key_prefix,
        "HOOKAGENT_DATA_DIR": str(settings.data_dir),
        "HOOKAGENT_GIT_URL_TEMPLATE": settings.git_url_template,
        "HOOKAGENT_AGENT": "command",
        "HOOKAGENT_AGENT_COMMAND": fake_agent("hang"),
        "HOOKAGENT_SHUTDOWN_GRACE": "0",
        "HOOKAGENT_KILL_GRACE": "1",
    }
    output = tmp_path / "worker.log"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hookagent.cli", "worker"], env=env, stdout=sink, stderr=sink
        )
    try:
        tid = await submit(client)
        await wait_for_line(store, tid, "hanging now")
        (info,) = await store.workers.live(30)
        assert (info.pid, info.task_id, info.phase) == (proc.pid, tid, "plan")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, output.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Gone at once, not after the record's TTL; the job is back in the queue.
    assert await store.workers.live(30) == [], output.read_text()
    await wait_for_line(store, tid, "job handed back to the queue")

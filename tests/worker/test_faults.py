"""Faults with real worker processes: SIGKILL mid-run, retry caps, racing workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookagent.cli.embedded import EmbeddedValkey
from hookagent.models import Action, NewTask, Phase, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store, connect
from tests.helpers import REPO, fake_agent, move_to, wait_dead, wait_for_line, wait_status

pytestmark = pytest.mark.faults

DONE = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}


class Workers:
    """Starts ``hookagent worker`` processes; kills what is left at the end."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        self.settings = settings
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, agent: str, **env: str) -> subprocess.Popen[bytes]:
        s = self.settings
        environ = {
            **os.environ,
            "HOOKAGENT_REDIS_URL": str(s.redis_url),
            "HOOKAGENT_KEY_PREFIX": s.key_prefix,
            "HOOKAGENT_DATA_DIR": str(s.data_dir),
            "HOOKAGENT_GIT_URL_TEMPLATE": s.git_url_template,
            "HOOKAGENT_AGENT": "command",
            "HOOKAGENT_AGENT_COMMAND": agent,
            "HOOKAGENT_LEASE_SECONDS": "1",
            "HOOKAGENT_KILL_GRACE": "2",
            **env,
        }
        log = (self.tmp / f"worker-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hookagent.cli", "worker"], env=environ, stdout=log, stderr=log
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, index: int) -> str:
        """What worker ``index`` printed (for failure messages)."""
        return (self.tmp / f"worker-{index}.log").read_text()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(settings, tmp_path)
    yield group
    group.stop()


async def queue_task(store: Store, phase: Phase = Phase.PLAN) -> str:
    new = NewTask(source="sentry", repository=REPO, title="Boom", prompt="ctx")
    task = await store.tasks.create(new)  # its planning job is queued with it
    if phase is Phase.EXECUTE:
        # Take the planning job off the queue and walk the task to approval, as a worker and
        # a person would; the approval queues the execution job.
        await store.jobs.ensure_group()
        job = await store.jobs.claim("test", block_ms=100)
        assert job is not None and job.task_id == task.task_id
        await store.jobs.ack(job)
        await move_to(store, task.task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "do it"})
        await store.tasks.advance(
            task.task_id, Action.APPROVE, fields={"phase": phase}, enqueue=Phase.EXECUTE
        )
    return task.task_id


async def test_sigkill_mid_run_is_reclaimed_and_finishes(store: Store, workers: Workers) -> None:
    tid = await queue_task(store)
    pidfile = workers.tmp / "agent.pids"
    victim = workers.start(fake_agent("spawn-slow", str(pidfile), "300", "0.1"))
    await wait_for_line(store, tid, "tick 3")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    workers.start(fake_agent("slow", "3", "0.01"))
    assert await wait_status(store, tid, DONE) is TaskStatus.PENDING_APPROVAL
    # Nothing of the killed attempt is left running: the agent died with its worker
    # (PDEATHSIG) and the successor killed the rest of its process group.
    pids = [int(pid) for pid in pidfile.read_text().split()]
    assert len(pids) == 2, pids  # the agent and the child it spawned
    for pid in pids:
        await wait_dead(pid)
    task = await store.tasks.get(tid)
    assert task.attempt == 2
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    attempts = [e.message for e in entries if "planning with command" in e.message]
    assert attempts[0].startswith("[system] attempt 1 (delivery 1)")
    assert attempts[1].startswith("[system] attempt 2 (delivery 2)")


async def test_retry_cap_fails_with_worker_lost(store: Store, workers: Workers) -> None:
    tid = await queue_task(store)
    victim = workers.start(fake_agent("slow", "30", "0.1"), HOOKAGENT_MAX_DELIVERIES="1")
    await wait_for_line(store, tid, "tick 1")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    workers.start(fake_agent("echo"), HOOKAGENT_MAX_DELIVERIES="1")
    assert await wait_status(store, tid, DONE) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error is not None and task.error.startswith(
        "worker lost: the job was delivered 2 times"
    )
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    assert entries[-1].message.startswith("[system] status failed: worker lost")


async def test_racing_workers_run_each_task_once(store: Store, workers: Workers) -> None:
    ids = [await queue_task(store) for _ in range(12)]
    for _ in range(3):
        workers.start(fake_agent("slow", "3", "0.02"))
    for tid in ids:
        assert await wait_status(store, tid, DONE, timeout=60) is TaskStatus.PENDING_APPROVAL
    for tid in ids:
        entries, _ = await store.logs.read(tid, offset=0, limit=-1)
        runs = [e for e in entries if "planning with command" in e.message]
        assert len(runs) == 1, [e.message for e in runs]
        assert (await store.tasks.get(tid)).attempt == 1


async def test_sigterm_hands_the_running_job_back(store: Store, workers: Workers) -> None:
    tid = await queue_task(store)
    slow = {"HOOKAGENT_LEASE_SECONDS": "60", "HOOKAGENT_SHUTDOWN_GRACE": "0.5"}
    leaving = workers.start(fake_agent("slow", "300", "0.05"), **slow)
    await wait_for_line(store, tid, "tick 2")
    leaving.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(leaving.wait, 60)
    except subprocess.TimeoutExpired:
        raise AssertionError(workers.log(0)) from None
    assert code == 0, workers.log(0)
    assert "did not stop" not in workers.log(0), workers.log(0)
    # The lease is a minute long, yet the next worker takes the job over at once.
    workers.start(fake_agent("echo"), **slow)
    assert await wait_status(store, tid, DONE, timeout=20) is TaskStatus.PENDING_APPROVAL
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    assert any(e.message.endswith("stopping; job handed back to the queue") for e in entries)


async def test_sigkill_during_execution(store: Store, workers: Workers) -> None:
    tid = await queue_task(store, phase=Phase.EXECUTE)
    victim = workers.start(fake_agent("slow", "30", "0.1"))
    await wait_for_line(store, tid, "tick 3")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    workers.start(fake_agent("slow", "2", "0.01"))
    assert (
        await wait_status(store, tid, {TaskStatus.COMPLETED, TaskStatus.FAILED})
        is TaskStatus.COMPLETED
    )
    task = await store.tasks.get(tid)
    assert (task.attempt, task.result) == (2, "no changes")


async def test_redis_restart_mid_run_loses_nothing(tmp_path: Path, settings: Settings) -> None:
    data = tmp_path / "own-valkey"
    valkey = EmbeddedValkey(data)
    url = valkey.start()
    own = settings.model_copy(update={"redis_url": url})
    workers = Workers(own, tmp_path)
    client = connect(url)
    try:
        store = Store.build(client, own)
        tid = await queue_task(store)
        workers.start(fake_agent("slow", "40", "0.1"))
        await wait_for_line(store, tid, "tick 5")
        before, _ = await store.logs.read(tid, offset=0, limit=-1)
        await asyncio.to_thread(valkey.stop)  # SIGTERM: Valkey writes its AOF and exits
        valkey = EmbeddedValkey(data)
        assert await asyncio.to_thread(valkey.start) == url
        assert await wait_status(store, tid, DONE, timeout=60) is TaskStatus.PENDING_APPROVAL
        after, _ = await store.logs.read(tid, offset=0, limit=-1)
        assert [e.message for e in after[: len(before)]] == [e.message for e in before]
        assert [e.seq for e in after] == list(range(len(after))), "no gap in the cursor"
        assert "[stdout] PLAN: slow done" in [e.message for e in after]
    finally:
        workers.stop()
        await client.aclose()
        valkey.stop()

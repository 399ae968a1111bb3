"""Faults with real worker processes: SIGKILL mid-run, retry caps, racing workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookagent.models import NewTask, Phase, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import REPO, fake_agent, wait_for_line, wait_status

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
            **env,
        }
        log = (self.tmp / f"worker-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hookagent.cli", "worker"], env=environ, stdout=log, stderr=log
        )
        log.close()
        self.procs.append(proc)
        return proc

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


async def queue_task(store: Store) -> str:
    new = NewTask(source="sentry", repository=REPO, title="Boom", prompt="ctx")
    task = await store.tasks.create(new, queue="planning-queue")
    await store.jobs.enqueue(task.task_id, Phase.PLAN)
    return task.task_id


async def test_sigkill_mid_run_is_reclaimed_and_finishes(store: Store, workers: Workers) -> None:
    tid = await queue_task(store)
    victim = workers.start(fake_agent("slow", "30", "0.1"))
    await wait_for_line(store, tid, "tick 3")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    workers.start(fake_agent("slow", "3", "0.01"))
    assert await wait_status(store, tid, DONE) is TaskStatus.PENDING_APPROVAL
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
    assert entries[-1].message.startswith("[system] failed: worker lost")


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

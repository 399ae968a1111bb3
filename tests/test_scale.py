"""Scale-out with real processes: ``hookagent worker --concurrency`` on one Redis, and ``up``."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from hookagent.models import NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import REPO, fake_agent, wait_status

TASKS = 50
PROCESSES = 4
LINES = 30
ATTEMPT = re.compile(r"\[system\] attempt (\d+) \(delivery (\d+)\): .* on worker (\S+)")


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process sharing this test's Redis, prefix and remotes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
    return env | {
        "HOOKAGENT_REDIS_URL": str(settings.redis_url),
        "HOOKAGENT_KEY_PREFIX": settings.key_prefix,
        "HOOKAGENT_DATA_DIR": str(settings.data_dir),
        "HOOKAGENT_GIT_URL_TEMPLATE": settings.git_url_template,
        "HOOKAGENT_AGENT": "command",
        "HOOKAGENT_AGENT_COMMAND": fake_agent("seq", str(LINES)),
        "HOOKAGENT_LOG_FLUSH_MS": "20",
    }


@pytest.fixture
def workers(settings: Settings) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``PROCESSES`` worker processes of two loops each; SIGTERMed (then killed) after."""
    argv = [sys.executable, "-m", "hookagent.cli", "worker", "--concurrency", "2"]
    procs = [
        subprocess.Popen(argv, env=worker_env(settings), stderr=subprocess.DEVNULL)
        for _ in range(PROCESSES)
    ]
    yield procs
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.load
@pytest.mark.timeout(120)
async def test_fifty_tasks_across_four_worker_processes_run_once_each_in_order(
    store: Store, workers: list[subprocess.Popen[bytes]]
) -> None:
    new = NewTask(source="jira", repository=REPO, title="scale", prompt="print a sequence")
    ids = [(await store.tasks.create(new)).task_id for _ in range(TASKS)]
    async with asyncio.timeout(90):
        for task_id in ids:
            done = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
            assert await wait_status(store, task_id, done) is TaskStatus.PENDING_APPROVAL
    ran_on: set[str] = set()
    for task_id in ids:
        entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
        messages = [entry.message for entry in entries]
        attempts = [m.groups() for m in map(ATTEMPT.search, messages) if m]
        assert [(a, d) for a, d, _ in attempts] == [("1", "1")], (task_id, messages)
        ran_on.add(attempts[0][2].rsplit("-", 2)[1])  # host-pid-suffix: the worker's pid
        seq = [m for m in messages if m.startswith("[stdout] seq ")]
        assert seq == [f"[stdout] seq {i}" for i in range(LINES)], task_id
    # The work was shared: more than one process took tasks (each has two loops).
    assert len(ran_on) > 1
    assert ran_on <= {str(p.pid) for p in workers}
    snap = await store.metrics.snapshot()
    assert snap.queue_depth == 0 and snap.tasks[TaskStatus.PENDING_APPROVAL] == TASKS
    assert snap.phases["plan"].count == TASKS

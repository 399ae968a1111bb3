"""HOOKAGENT_AGENT_NICE: the agent runs nicer than the worker, in the idle I/O class."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from hookagent.models import TaskStatus
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.helpers import fake_agent, wait_status
from tests.worker.test_sandbox import PLANNED, messages, needs_bwrap, submit


def io_class(pid: int) -> str:
    """``pid``'s I/O scheduling class as util-linux's ionice reports it."""
    return subprocess.run(
        ["ionice", "-p", str(pid)], capture_output=True, text=True, check=True
    ).stdout.strip()


async def agent_priorities(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, **overrides: object
) -> list[str]:
    """What the agent reports of its priorities after one planning run."""
    start_worker(agent_command=fake_agent("priority"), **overrides)
    task_id = await submit(client)
    assert await wait_status(store, task_id, PLANNED) is TaskStatus.PENDING_APPROVAL
    log = await messages(store, task_id)
    wanted = ("[stdout] nice", "[stdout] io", "[stdout] child", "[stdout] autogroup")
    return [m for m in log if m.startswith(wanted)]


@pytest.mark.parametrize(
    "sandbox", ["none", pytest.param("bwrap", marks=needs_bwrap)], ids=["host", "bwrap"]
)
async def test_the_agent_runs_nicer_in_the_idle_io_class_and_the_worker_does_not(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, sandbox: str
) -> None:
    own_nice, own_io = os.getpriority(os.PRIO_PROCESS, 0), io_class(os.getpid())
    assert own_io != "idle"  # else the test could not tell the agent's class from ours
    expected = min(own_nice + 10, 19)
    assert expected != own_nice
    reported = await agent_priorities(client, store, start_worker, sandbox=sandbox)
    assert reported[:3] == [
        f"[stdout] nice {expected}",
        "[stdout] io idle",
        f"[stdout] child nice {expected}",
    ]
    if sandbox == "none":
        # Its session weighs as little against the API's session as its niceness says.
        # (Under bwrap, whose --new-session starts another session, it does not yet.)
        assert reported[3] == f"[stdout] autogroup {expected}"
    # The worker (this process here) keeps its own priorities.
    assert (os.getpriority(os.PRIO_PROCESS, 0), io_class(os.getpid())) == (own_nice, own_io)


async def test_agent_nice_zero_leaves_the_priorities_as_they_are(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    own_nice, own_io = os.getpriority(os.PRIO_PROCESS, 0), io_class(os.getpid())
    reported = await agent_priorities(client, store, start_worker, agent_nice=0)
    assert reported == [
        f"[stdout] nice {own_nice}",
        f"[stdout] io {own_io}",
        f"[stdout] child nice {own_nice}",
        "[stdout] autogroup 0",  # a new session's own, untouched
    ]

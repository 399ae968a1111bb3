"""Each run's configuration home (CODEX_HOME, GEMINI_CLI_HOME): private, fresh, then gone.

Under bwrap it is bound into the sandbox, alone: nothing else of the data dir comes with it.
"""

from __future__ import annotations

import asyncio
import shlex
import stat
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest

from hookagent.agents import CommandAgent
from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker import Worker
from hookagent.worker.run import AGENT_HOMES
from hookagent.worker.sandbox import AGENT_HOME
from tests.helpers import FIXTURES, fake_agent, wait_status
from tests.worker.test_sandbox import needs_bwrap

PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}


class HomeAgent(CommandAgent):
    """The command adapter, given a configuration home as the Codex and Gemini ones are."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv)
        self.homes: list[Path] = []

    def configure(self, home: Path, env: Mapping[str, str]) -> dict[str, str]:
        """Our file in the home, and its path in the agent's environment."""
        self.homes.append(home)
        (home / "config").write_text("written by hookagent\n")
        return {"AGENT_HOME": str(home)}


@pytest.fixture
async def home_agent(
    store: Store, settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[HomeAgent]:
    """A worker running a fake agent scenario (``home`` by default) through ``HomeAgent``.

    Parametrized indirectly, the parameter is the worker's ``sandbox`` setting, or that
    setting and the scenario's arguments.
    """
    param = getattr(request, "param", "none")
    sandbox, scenario = (param, ["home"]) if isinstance(param, str) else param
    own = settings.model_copy(update={"sandbox": sandbox})
    # "{data}" in an argument: the data dir's real path (an adversary may know it).
    args = [a.replace("{data}", str(settings.data_dir.resolve())) for a in scenario]
    agent = HomeAgent(shlex.split(fake_agent(*args)))
    stop = asyncio.Event()
    running = asyncio.create_task(Worker(store=store, settings=own, agent=agent).run(stop))
    yield agent
    stop.set()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


async def submit(client: httpx.AsyncClient, store: Store) -> str:
    """A task from the Sentry alert fixture, once its planning run has ended."""
    body = (FIXTURES / "sentry-event-alert.json").read_bytes()
    response = await client.post(
        "/webhooks/sentry", content=body, headers={"content-type": "application/json"}
    )
    task_id: str = response.json()["task_id"]
    await wait_status(store, task_id, PLANNED)
    return task_id


@pytest.mark.parametrize(
    "home_agent", ["none", pytest.param("bwrap", marks=needs_bwrap)], indirect=True
)
async def test_an_agent_cannot_leave_anything_in_its_home_for_the_next_run(
    client: httpx.AsyncClient, store: Store, settings: Settings, home_agent: HomeAgent
) -> None:
    tid = await submit(client, store)
    assert (await store.tasks.get(tid)).status is TaskStatus.PENDING_APPROVAL
    await client.post(f"/tasks/{tid}/approve", json={})
    await wait_status(store, tid, {TaskStatus.COMPLETED, TaskStatus.FAILED})
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    listed = [e.message for e in entries if e.message.startswith("[stdout] home: ")]
    # Each run (plan, then execution) found only what hookagent wrote: no plant of the last.
    assert listed == ["[stdout] home: config"] * 2
    first, second = home_agent.homes
    # The task's own home, made afresh for each run (only a run parked on the model's quota
    # leaves it for the next: tests/worker/test_quota.py).
    assert first == second and first.name == tid
    for home in (first, second):
        # Private, under the data dir, outside every workspace; removed (read-only dir and
        # all) when its run ended.
        assert home.parent == settings.data_dir.resolve() / AGENT_HOMES
        assert not home.is_relative_to(settings.workspaces.resolve())
        assert not home.exists()
    assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700


def data_dir(settings: Settings) -> Path:
    """The data dir as the worker resolves it."""
    return settings.data_dir.resolve()


@needs_bwrap
@pytest.mark.parametrize(
    "home_agent",
    [("bwrap", ["escape", "{data}", "{data}/agent-homes", "{data}/workspaces"])],
    indirect=True,
)
async def test_a_sandboxed_agent_sees_its_home_and_nothing_else_of_the_data_dir(
    client: httpx.AsyncClient, store: Store, settings: Settings, home_agent: HomeAgent
) -> None:
    """Bound alone at a fixed path: its parent is the sandbox's, not the data dir."""
    data = data_dir(settings)
    tid = await submit(client, store)
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    said = [e.message.removeprefix("[stdout] ") for e in entries]
    assert (await store.tasks.get(tid)).status is TaskStatus.PENDING_APPROVAL, said
    assert f"home at {AGENT_HOME}" in said
    [parent] = [line for line in said if line.startswith(f"seen {AGENT_HOME}/..: ")]
    # The sandbox's /run/hookagent: the bridge and the proxy's socket, the home; no task's
    # home, workspace or the data dir's files.
    assert set(parent.split(": ", 1)[1].split()) <= {"agent-home", "bridge.py", "egress.sock"}
    # The data dir holds only the way to its own workspace (bwrap's mount points): no home.
    assert f"seen {data}: workspaces" in said
    assert f"hidden {data / AGENT_HOMES}: FileNotFoundError" in said
    [workspaces] = [line for line in said if line.startswith(f"seen {data / 'workspaces'}: ")]
    assert len(workspaces.split(": ", 1)[1].split()) == 1
    [home] = home_agent.homes
    assert not home.exists()

"""Quotas park, they don't fail: the mechanism, with the fake agent behind a quota wall.

The fake agent's "API" refuses every call for a while after the first (a 429 asking to
retry when the wall ends) and counts the refused calls: the task must wait for the wall,
then complete; once two tasks have hit it, a third must wait without calling at all, and a
wall only one task saw (which its agent could have faked) holds back no other task.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hookagent.models import TaskStatus
from hookagent.policy import Policy
from hookagent.settings import Settings
from hookagent.store import Parked, Store
from hookagent.worker.quota import clock, fallback_after, session_id
from hookagent.worker.run import sweep_homes, task_home
from hookagent.worker.workspace import Workspaces
from tests.conftest import RunWorker
from tests.helpers import fake_agent, wait_for_line, wait_status
from tests.worker.test_policies import submit_alert

PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
WAITING = re.compile(
    r"\[system\] waiting for the model quota until (\d\d:\d\d:\d\d) \(command, (.*)\)$"
)


def wall(state: Path) -> dict[str, float]:
    """The fake API's counters: its wall's end, calls refused, calls made."""
    loaded: dict[str, float] = json.loads(state.read_text())
    return loaded


async def messages(store: Store, task_id: str) -> list[str]:
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return [e.message for e in entries]


async def waiting(store: Store, task_id: str) -> str:
    """The task's waiting line, once it is written."""
    await wait_for_line(store, task_id, "waiting for the model quota")
    lines = [m for m in await messages(store, task_id) if WAITING.match(m)]
    assert len(lines) == 1, lines
    return lines[0]


async def test_a_task_out_of_quota_waits_then_completes(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    settings: Settings,
) -> None:
    state = tmp_path / "api.json"
    start_worker(agent_command=fake_agent("quota", str(state), "1.5"))
    tid = await submit_alert(client)
    line = await waiting(store, tid)
    # The task keeps its status while it waits: not failed, its job not gone.
    task = await store.tasks.get(tid)
    assert task.status is TaskStatus.DISCOVERING and task.error is None
    [(until, reason)] = WAITING.findall(line)
    assert "429 rate limit reached" in reason
    assert until in {clock(wall(state)["wall"]), clock(wall(state)["wall"] + 1)}
    quota = await store.quota.state("command")
    assert quota is not None and quota.hits == 1
    # Seen by one task only: recorded, not yet holding the agent's other tasks back.
    assert not quota.shared and (await client.get("/workers")).json()["quotas"] == []
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    done = wall(state)
    # One refused call, then the run after the wall: the job came back when the API said.
    assert (done["hits"], done["runs"]) == (1, 2)
    assert (await store.tasks.get(tid)).plan == "PLAN: fix the bug once the quota is back"
    lines = await messages(store, tid)
    assert not [m for m in lines if "status failed" in m], lines
    # The agent's quota is back: its mark and the task's resume point are gone.
    assert await store.quota.state("command") is None
    assert await store.quota.parked(tid) is None
    metrics = (await client.get("/metrics")).text
    assert 'hookagent_agent_quota_waits_total{agent="command"} 1.0' in metrics


async def test_once_two_tasks_hit_the_wall_the_others_wait_without_calling(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    state = tmp_path / "api.json"
    for _ in range(2):  # two workers: a task would start at once
        start_worker(agent_command=fake_agent("quota", str(state), "6"))
    first = await submit_alert(client)
    await waiting(store, first)
    # One task's wall could be its agent's forgery: the next task still calls.
    assert (await client.get("/workers")).json()["quotas"] == []
    second = await submit_alert(client)
    await waiting(store, second)
    assert wall(state)["runs"] == 2
    # Two tasks hit it: shared by every worker now, and shown to operators while it lasts.
    shown = (await client.get("/workers")).json()["quotas"]
    assert [q["agent"] for q in shown] == ["command"]
    assert "429 rate limit" in shown[0]["reason"] and shown[0]["until"].endswith("Z")
    third = await submit_alert(client)
    line = await waiting(store, third)
    assert wall(state)["runs"] == 2  # the third task logged its wait without calling
    assert "429 rate limit reached" in line
    for tid in (first, second, third):
        assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    done = wall(state)
    assert (done["hits"], done["runs"]) == (2, 5)
    metrics = (await client.get("/metrics")).text
    [waits] = re.findall(r'hookagent_agent_quota_waits_total\{agent="command"\} (\d+)', metrics)
    # Each task waited; the first may wait once more if the second's hit moved the end.
    assert int(waits) in {3, 4}
    assert (await client.get("/workers")).json()["quotas"] == []


async def test_a_wall_one_task_alone_reports_holds_back_no_other_task(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    """An agent told to stop everyone prints a 429 of its own: only its task waits."""
    state = tmp_path / "api.json"
    token = "ghp_" + "ForgedWallToken0123456789abcdef0123"
    start_worker(
        agent_command=fake_agent("forged-quota", str(state), "600", f"token={token}"),
        github_token=SecretStr(token),
    )
    forger = await submit_alert(client)
    await waiting(store, forger)
    # The wall's text is the agent's to write: stored (for /workers, other tasks' logs)
    # redacted, like every line of the log.
    quota = await store.quota.state("command")
    assert quota is not None and token not in quota.reason, quota
    assert "[REDACTED" in quota.reason
    other = await submit_alert(client)
    assert await wait_status(store, other, PLANNED) is TaskStatus.PENDING_APPROVAL
    assert not [m for m in await messages(store, other) if "waiting for the model" in m]
    assert wall(state)["runs"] == 2
    # The other run went through, so the agent's mark is gone; the forger waits on alone.
    assert await store.quota.state("command") is None
    parked = await store.quota.parked(forger)
    assert parked is not None and parked.until > time.time() + 500
    assert (await store.tasks.get(forger)).status is TaskStatus.DISCOVERING


async def test_the_wait_doubles_from_a_minute_and_is_capped(store: Store) -> None:
    """Without a Retry-After: 60 s, 120 s, 240 s... never past HOOKAGENT_QUOTA_WAIT_MAX."""
    waits = []
    for _ in range(4):
        before = time.time()
        hit = await store.quota.exhaust(
            "claude", task_id="t1", reason="429", retry_after_s=None, wait_max_s=150
        )
        waits.append((hit.wanted_s, round(hit.quota.until - before)))
    assert [wanted for wanted, _ in waits] == [60, 120, 240, 480]
    # The mark never moves back, and never past the cap from the hit that set it.
    assert [until for _, until in waits] == [60, 120, 150, 150]
    await store.quota.recover("claude")
    assert await store.quota.state("claude") is None
    hit = await store.quota.exhaust(
        "claude", task_id="t1", reason="429", retry_after_s=2, wait_max_s=150
    )
    assert hit.wanted_s == 2 and hit.quota.hits == 1 and not hit.quota.shared
    # Another task's hit shares the mark: from then on every run of the agent waits.
    hit = await store.quota.exhaust(
        "claude", task_id="t2", reason="429", retry_after_s=2, wait_max_s=150
    )
    assert hit.quota.shared and (await store.quota.state("claude")) == hit.quota
    assert [q.agent for q in await store.quota.states(("claude", "codex"))] == ["claude"]
    await store.quota.recover("claude")


def test_the_fallback_is_thefallback_after_the_policy_lists() -> None:
    policy = Policy(fallback_agents=("codex", "gemini"))
    assert fallback_after(policy, "claude") == "codex"
    assert fallback_after(policy, "codex") == "gemini"
    assert fallback_after(policy, "gemini") is None
    assert fallback_after(Policy(), "claude") is None


async def test_the_sweep_removes_the_homes_of_ended_tasks_only(settings: Settings) -> None:
    """A parked task cancelled while it waits leaves its home: the sweep takes it."""
    ended, live = task_home(settings, "task-1-aa"), task_home(settings, "task-2-bb")
    for home in (ended, live):
        (home / "projects").mkdir(parents=True)
    stray = task_home(settings, "not-a-task")
    stray.mkdir()

    async def is_live(task_id: str) -> bool:
        return task_id == live.name

    assert await sweep_homes(settings, is_live) == 1
    assert not ended.exists() and live.exists() and stray.exists()


@pytest.mark.parametrize(
    "claimed",
    ["--dangerously-skip-permissions", "-x", "a b", "a\nb", "../../etc", "", None, 7, "x" * 200],
)
def test_a_session_id_the_agent_could_forge_is_never_resumed(claimed: object) -> None:
    """It goes back on the CLI's command line: nothing that reads as an option passes."""
    assert session_id(claimed) is None


def test_the_session_ids_of_the_three_clis_are_resumed() -> None:
    for real in ("9ff56013-2c0a-42c5-94a2-6cb494cef20d", "01a24366-e9c7-7110-aaa6-8ce6e429dbfc"):
        assert session_id(real) == real


async def test_a_resumed_session_the_cli_lost_starts_the_phase_afresh(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, settings: Settings
) -> None:
    """A parked session, its workspace kept, but the CLI no longer knows it: not a failure."""
    tid = await submit_alert(client)  # no worker yet: the job waits
    workspaces = Workspaces.from_settings(settings)
    for kept in (workspaces.path(tid), workspaces.git_dir(tid)):
        kept.mkdir(parents=True)
    await store.quota.park(tid, Parked(agent="command", phase="plan", session="s-1", base=None))
    start_worker(agent_command=fake_agent("lost-session"))
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    lines = await messages(store, tid)
    assert "[system] resuming session s-1 of command" in lines
    [restart] = [m for m in lines if "the resumed session of command failed" in m]
    assert restart.endswith("(exit code 1); starting the phase afresh")
    assert (await store.tasks.get(tid)).plan == "PLAN: planned afresh"
    assert await store.quota.parked(tid) is None

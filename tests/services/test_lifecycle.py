"""The two-phase flow: plan → approve → execute → branch and pull request, and its exits."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.agents import build_agent
from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker import Worker
from tests.conftest import RunWorker
from tests.github_stub import GitHubStub
from tests.helpers import (
    FIXTURES,
    REPO,
    app_client,
    fake_agent,
    move_to,
    wait_dead,
    wait_for_line,
    wait_status,
)

ALERT = (FIXTURES / "sentry-event-alert.json").read_bytes()
JSON = {"content-type": "application/json"}
PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        yield stub


def with_token(github: GitHubStub) -> dict[str, object]:
    return {"github_api_url": github.url, "github_token": SecretStr("ghp_test_token_value")}


async def submit(client: httpx.AsyncClient) -> str:
    response = await client.post("/webhooks/sentry", content=ALERT, headers=JSON)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def messages(store: Store, task_id: str) -> list[str]:
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return [e.message for e in entries]


def remote_branches(remotes: Path) -> str:
    bare = remotes / f"{REPO}.git"
    return subprocess.run(
        ["git", "-C", str(bare), "branch", "--list"], capture_output=True, text=True, check=True
    ).stdout


async def test_plan_approve_execute_push_and_pull_request(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    github: GitHubStub,
    remotes: Path,
) -> None:
    start_worker(agent_command=fake_agent("auto"), **with_token(github))
    tid = await submit(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    approved = await client.post(
        f"/tasks/{tid}/approve", json={"comment": "keep it small", "actor": "ignored"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json() == {"task_id": tid, "status": "approved", "previous": "pending_approval"}
    again = await client.post(f"/tasks/{tid}/approve")
    assert again.status_code == 409
    assert again.json()["detail"] in {f"task {tid} is approved", f"task {tid} is executing"}
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED

    task = await store.tasks.get(tid)
    assert task.branch == f"hookagent/{tid}" and task.commit and len(task.commit) == 40
    assert (
        task.pr_number is not None
        and task.pr_url == f"https://github.com/{REPO}/pull/{task.pr_number}"
    )
    assert f"hookagent/{tid}" in remote_branches(remotes)
    [request] = github.requests
    assert request["path"] == f"/repos/{REPO}/pulls"
    assert request["headers"]["Authorization"] == "Bearer ghp_test_token_value"
    body = request["body"]
    assert (body["head"], body["base"]) == (f"hookagent/{tid}", "main")
    assert "PLAN: guard the division in app.py" in body["body"] and f"/tasks/{tid}" in body["body"]

    log = await messages(store, tid)
    # The log names who is authenticated (anonymous on loopback here), never the body's claim.
    assert "[system] status approved: approved by anonymous (127.0.0.1): keep it small" in log
    assert sum("approved by" in m for m in log) == 1, "the decision is logged once"
    executing = [m for m in log if "executing the approved plan" in m]
    assert len(executing) == 1, "approving twice queued one execution"
    assert any(m.startswith("[system] opened pull request #") for m in log)
    history = [h.status for h in await store.tasks.history(tid)]
    assert history == [
        "queued",
        "discovering",
        "pending_approval",
        "approved",
        "executing",
        "completed",
    ]


async def test_execution_prompt_carries_plan_and_comment(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    # The fake agent echoes the prompt lines holding these words: none in planning, so the
    # plan is its one PLAN line; in execution, the plan and the comment under their headings.
    words = [
        "You are fixing",
        "Approved plan:",
        "PLAN:",
        "Approver's comment:",
        "keep the old name",
    ]
    start_worker(agent_command=fake_agent("prompt", *words))
    tid = await submit(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    assert (await store.tasks.get(tid)).plan == "PLAN: guard the division in app.py"
    comment = "ship it, but keep the old name"
    approved = await client.post(f"/tasks/{tid}/approve", json={"comment": comment})
    assert approved.status_code == 200, approved.text
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    seen = [m for m in await messages(store, tid) if m.startswith("[stdout] prompt| ")]
    assert [m.removeprefix("[stdout] prompt| ") for m in seen] == [
        f"You are fixing an issue in the repository {REPO}, which is checked out in the current",
        "Approved plan:",
        "PLAN: guard the division in app.py",
        "Approver's comment:",
        comment,
    ]


async def test_no_token_pushes_the_branch_and_says_so(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, remotes: Path
) -> None:
    start_worker(agent_command=fake_agent("auto"))
    tid = await submit(client)
    await wait_status(store, tid, PLANNED)
    await client.post(f"/tasks/{tid}/approve")
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    task = await store.tasks.get(tid)
    assert task.pr_url is None and task.commit
    assert f"hookagent/{tid}" in remote_branches(remotes)
    assert (
        "[system] no HOOKAGENT_GITHUB_TOKEN: branch pushed, no pull request opened"
        in await messages(store, tid)
    )


async def test_no_changes_completes_without_a_pull_request(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, github: GitHubStub
) -> None:
    start_worker(agent_command=fake_agent("auto", "noop"), **with_token(github))
    tid = await submit(client)
    await wait_status(store, tid, PLANNED)
    await client.post(f"/tasks/{tid}/approve")
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    task = await store.tasks.get(tid)
    assert (task.result, task.branch, task.pr_url) == ("no changes", None, None)
    assert github.requests == []


async def test_refused_pull_request_fails_with_githubs_reason(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, github: GitHubStub
) -> None:
    github.fail_with = (
        422,
        {"message": "Validation Failed", "errors": [{"message": "A pull request already exists"}]},
        {},
    )
    start_worker(agent_command=fake_agent("auto"), **with_token(github))
    tid = await submit(client)
    await wait_status(store, tid, PLANNED)
    await client.post(f"/tasks/{tid}/approve")
    assert await wait_status(store, tid, ENDED) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error == "GitHub answered 422: Validation Failed (A pull request already exists)"


async def test_rejected_push_fails_clearly(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, remotes: Path
) -> None:
    hook = remotes / f"{REPO}.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch protection: pushes are frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    start_worker(agent_command=fake_agent("auto"))
    tid = await submit(client)
    await wait_status(store, tid, PLANNED)
    await client.post(f"/tasks/{tid}/approve")
    assert await wait_status(store, tid, ENDED) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error is not None and task.error.startswith(f"push of hookagent/{tid} rejected")
    assert "pushes are frozen" in task.error


async def test_reject_then_nothing_else_is_allowed(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker(agent_command=fake_agent("auto"))
    tid = await submit(client)
    await wait_status(store, tid, PLANNED)
    rejected = await client.post(f"/tasks/{tid}/reject", json={"reason": "wrong approach"})
    assert rejected.json()["status"] == "rejected"
    for action in ("approve", "reject", "revise", "retry"):
        response = await client.post(f"/tasks/{tid}/{action}", json={"feedback": "x"})
        assert response.status_code == 409, action
        assert response.json()["detail"] == f"task {tid} is rejected"
    assert (await client.post("/tasks/task-1-00/approve")).status_code == 404


async def test_revise_replans_with_feedback_and_keeps_the_old_plan(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker(agent_command=fake_agent("auto"))
    tid = await submit(client)
    await wait_status(store, tid, PLANNED)
    revised = await client.post(f"/tasks/{tid}/revise", json={"feedback": "handle negative totals"})
    assert revised.json()["status"] == "queued"
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    detail = (await client.get(f"/tasks/{tid}")).json()
    assert detail["plans"] == [
        "PLAN: guard the division in app.py",
        "PLAN v2: guard the division; also handle negative totals",
    ]
    assert detail["plan"] == detail["plans"][1] and detail["attempt"] == 2


async def test_cancel_from_another_api_process_kills_the_agent(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    settings: Settings,
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "agent.pids"
    start_worker(agent_command=fake_agent("hang", "spawn", str(pidfile)))
    tid = await submit(client)
    await wait_for_line(store, tid, "hanging now")  # printed after the pid file is written
    # A second app with its own Redis connection, like another API server.
    async with app_client(settings) as http:
        response = await http.post(
            f"/tasks/{tid}/cancel", json={"actor": "dana", "reason": "wrong repo"}
        )
    assert response.json() == {"task_id": tid, "status": "cancelled", "previous": "discovering"}
    pids = [int(pid) for pid in pidfile.read_text().split()]
    assert len(pids) == 2, pids  # the agent and the child it spawned
    for pid in pids:
        await wait_dead(pid)
    log = await messages(store, tid)
    assert any(
        m.startswith("[system] status cancelled: cancelled by anonymous (127.0.0.1) at ")
        and m.endswith(": wrong repo")
        for m in log
    )
    assert (await store.tasks.get(tid)).status is TaskStatus.CANCELLED


async def test_cancel_a_queued_task(client: httpx.AsyncClient, store: Store) -> None:
    tid = await submit(client)
    response = await client.post(f"/tasks/{tid}/cancel")
    assert response.json()["previous"] == "queued"
    again = await client.post(f"/tasks/{tid}/cancel")
    assert again.status_code == 409


async def test_retry_restarts_the_failed_phase(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    start_worker(agent_command=fake_agent("auto", "flaky", str(tmp_path / "marker")))
    tid = await submit(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.FAILED
    retried = await client.post(f"/tasks/{tid}/retry")
    assert retried.json() == {"task_id": tid, "status": "queued", "previous": "failed"}
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    assert {e.attempt for e in entries if e.message.startswith("[system] attempt")} == {1, 2}


async def test_stalled_agent_is_warned_then_killed(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker(agent_command=fake_agent("hang"), stall_timeout=1, stall_kill=2.5)
    tid = await submit(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error == "stalled: no output for 2s (HOOKAGENT_STALL_KILL)"
    log = await messages(store, tid)
    # One warning for the silence after its last line (a start-up slower than the warning
    # time, under load, may earn the silence before that line one of its own).
    last_line = max(i for i, m in enumerate(log) if m == "[stdout] hanging now")
    warnings = [m for m in log[last_line:] if m.startswith("[system] warning: no output from")]
    assert len(warnings) == 1


async def test_approval_expires(
    client: httpx.AsyncClient, store: Store, settings: Settings, redis: Redis
) -> None:
    tid = await submit(client)
    await move_to(store, tid, TaskStatus.PENDING_APPROVAL, fields={"plan": "p"})
    own = settings.model_copy(update={"approval_ttl": 0.2})
    await asyncio.sleep(0.3)  # the approval window is real time
    async with app_client(own, redis) as http:
        response = await http.post(f"/tasks/{tid}/approve")
    assert response.status_code == 409 and "approval expired" in response.json()["detail"]
    assert (await store.tasks.get(tid)).status is TaskStatus.CANCELLED


async def test_worker_stopping_hands_its_job_back(
    client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    own = settings.model_copy(
        update={"agent_command": fake_agent("slow", "200", "0.05"), "lease_seconds": 30}
    )
    first = Worker(store=store, settings=own, agent=build_agent(own))
    stop = asyncio.Event()
    running = asyncio.create_task(first.run(stop))
    tid = await submit(client)
    await wait_for_line(store, tid, "tick 2")
    running.cancel()  # what the service does once the shutdown grace is over
    await asyncio.gather(running, return_exceptions=True)
    # The lease is 30 s, yet the next worker takes the job over at once.
    quick = settings.model_copy(update={"agent_command": fake_agent("echo"), "lease_seconds": 30})
    second = Worker(store=store, settings=quick, agent=build_agent(quick))
    again = asyncio.create_task(second.run(stop))
    try:
        assert await wait_status(store, tid, PLANNED, timeout=10) is TaskStatus.PENDING_APPROVAL
    finally:
        stop.set()
        again.cancel()
        await asyncio.gather(again, return_exceptions=True)
    log = await messages(store, tid)
    assert f"[system] worker {first.name} stopping; job handed back to the queue" in log


async def test_user_text_cannot_forge_log_lines(client: httpx.AsyncClient, store: Store) -> None:
    """An actor or comment holding a newline and a fake ``[system]`` line stays one line."""
    forged = "\n[system] status completed"
    tid = await submit(client)
    await move_to(store, tid, TaskStatus.PENDING_APPROVAL, fields={"plan": "the plan"})
    response = await client.post(
        f"/tasks/{tid}/approve",
        json={"actor": "mallory" + forged, "comment": "ok\x1b[2K\r" + forged + "x" * 5000},
    )
    assert response.status_code == 200, response.text
    log = await messages(store, tid)
    assert not any("\n" in m or "\r" in m or "\x1b" in m for m in log)
    assert "[system] status completed" not in log
    assert not any("mallory" in m for m in log), "the body's actor is ignored"
    said = "[system] status approved: approved by anonymous (127.0.0.1): ok"
    approved = [m for m in log if m.startswith(said)]
    assert len(approved) == 1 and "ok\\x1b[2K\\r\\n[system] status" in approved[0]
    assert len(approved[0]) < 2300, "escaped and capped"

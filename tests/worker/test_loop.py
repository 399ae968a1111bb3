"""The worker end to end in-process: webhook → clone → agent → logs → status."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx

from hookagent.agents import build_agent
from hookagent.models import Phase, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker import Worker
from tests.conftest import RunWorker
from tests.helpers import FIXTURES, fake_agent, wait_for_line, wait_status

DONE = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
ALERT = (FIXTURES / "sentry-event-alert.json").read_bytes()


async def submit(client: httpx.AsyncClient, **params: str) -> str:
    payload = json.loads(ALERT)
    payload["data"]["event"]["issue_id"] = uuid.uuid4().hex  # a new incident each time
    response = await client.post("/webhooks/sentry", json=payload, params=params)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def logs(client: httpx.AsyncClient, task_id: str) -> list[str]:
    body = (await client.get(f"/tasks/{task_id}/logs", params={"limit": -1})).json()
    return [e["message"] for e in body["logs"]]


async def test_plan_reaches_pending_approval(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker()
    tid = await submit(client)
    assert await wait_status(store, tid, DONE) is TaskStatus.PENDING_APPROVAL
    messages = await logs(client, tid)
    assert messages[1].startswith("[system] attempt 1 (delivery 1): planning with command")
    assert "[system] cloned acme/payments-api into workspace " + tid in messages
    assert any(m.startswith("[stdout] stdin first line: You are investigating") for m in messages)
    assert messages[-2:] == [
        "[system] plan ready; waiting for approval",
        "[system] status pending_approval",
    ]
    assert messages[0] == "[system] status discovering"
    status = (await client.get(f"/tasks/{tid}/status")).json()
    assert "PLAN: fix the bug" in status["metadata"]["plan"]
    detail = (await client.get(f"/tasks/{tid}")).json()
    assert [h["status"] for h in detail["history"]] == ["queued", "discovering", "pending_approval"]


async def test_stdout_and_stderr_are_interleaved_and_labelled(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker(agent_command=fake_agent("mixed", "50"))
    tid = await submit(client)
    assert await wait_status(store, tid, DONE) is TaskStatus.PENDING_APPROVAL
    messages = await logs(client, tid)
    assert [m for m in messages if m.startswith("[stdout] out")] == [
        f"[stdout] out {i}" for i in range(50)
    ]
    assert [m for m in messages if m.startswith("[stderr]")] == [
        f"[stderr] err {i}" for i in range(50)
    ]


async def test_crash_fails_with_reason_and_worker_lives_on(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    worker = start_worker(agent_command=fake_agent("crash", "3"))
    first = await submit(client)
    second = await submit(client)
    assert await wait_status(store, first, DONE) is TaskStatus.FAILED
    assert await wait_status(store, second, DONE) is TaskStatus.FAILED
    messages = await logs(client, first)
    assert "[stderr] Traceback: boom" in messages
    assert messages[-1] == "[system] status failed: exit code 3"
    task = await store.tasks.get(first)
    assert task.error == "exit code 3"
    # The same (only) worker went on to run the second task after the first one failed.
    assert (await logs(client, second))[1].endswith(f"on worker {worker.name}")


async def test_missing_binary(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker(agent_command="hookagent-no-such-binary --flag")
    tid = await submit(client)
    assert await wait_status(store, tid, DONE) is TaskStatus.FAILED
    assert (await logs(client, tid))[-1] == (
        "[system] status failed: agent binary not found: 'hookagent-no-such-binary' "
        "(is it installed and on PATH?)"
    )


async def test_hang_times_out(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker(agent_command=fake_agent("hang"), planning_timeout=2)
    tid = await submit(client)
    assert await wait_status(store, tid, DONE) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error == "agent timed out after 2s (HOOKAGENT_PLANNING_TIMEOUT)"
    assert "[stdout] hanging now" in await logs(client, tid)


async def test_binary_junk_and_huge_lines_are_stored(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker(agent_command=fake_agent("huge", str(3 * 1024 * 1024)), log_line_max=1000)
    tid = await submit(client)
    assert await wait_status(store, tid, DONE) is TaskStatus.PENDING_APPROVAL
    messages = await logs(client, tid)
    huge = next(m for m in messages if m.startswith("[stdout] xxx"))
    assert huge.endswith(f"[truncated {3 * 1024 * 1024 + 9 - 1000} characters]")
    assert "[stdout] after huge" in messages

    start_worker(agent_command=fake_agent("binary"))
    junk = await submit(client)
    assert await wait_status(store, junk, DONE) is TaskStatus.PENDING_APPROVAL


async def test_unclonable_repository_fails_clearly(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker()
    payload = {"data": {"event": {"title": "x", "tags": [["repository", "acme/missing-repo"]]}}}
    tid = (await client.post("/webhooks/sentry", json=payload)).json()["task_id"]
    assert await wait_status(store, tid, DONE) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error is not None and task.error.startswith("git clone failed (exit 128)")


async def test_log_cap_stops_a_flood(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker(agent_command=fake_agent("lines", "5000"), log_max_lines=100)
    tid = await submit(client)
    assert await wait_status(store, tid, DONE) is TaskStatus.PENDING_APPROVAL
    body = (await client.get(f"/tasks/{tid}/logs", params={"limit": -1})).json()
    assert body["total"] == 100
    assert "log limit of 100 lines reached" in body["logs"][-1]["message"]


async def test_progress_is_saved_and_shown_in_status(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    recording = Path(__file__).parents[1] / "agents" / "recordings" / "claude-todos.jsonl"
    fake_claude = tmp_path / "claude"
    fake_claude.write_text(f"#!/bin/sh\ncat > /dev/null\ncat '{recording}'\n")
    fake_claude.chmod(0o755)
    # The worker's default agent is the plain command; this task asks for Claude.
    start_worker(claude_bin=str(fake_claude))
    tid = await submit(client, agent="claude")
    assert await wait_status(store, tid, DONE) is TaskStatus.PENDING_APPROVAL
    progress = (await client.get(f"/tasks/{tid}/progress")).json()["progress"]
    assert progress["phase"] == "plan" and progress["turns"] == 4
    assert progress["todos"] == {"done": 1, "total": 2}
    assert progress["tool_calls"] == {"TodoWrite": 2, "Edit": 1} and progress["lines"] == 9
    status = (await client.get(f"/tasks/{tid}/status")).json()
    assert status["metadata"]["progress"]["cost_usd"] == 0.0123
    assert (await store.tasks.get(tid)).agent == "claude"
    bad = await client.post("/webhooks/sentry", content=ALERT, params={"agent": "eliza"})
    assert bad.status_code == 422


def fake_claude(tmp_path: Path, recording: str) -> Path:
    """A ``claude`` that swallows its prompt and prints a recorded stream-json run."""
    played = Path(__file__).parents[1] / "agents" / "recordings" / recording
    binary = tmp_path / "claude"
    binary.write_text(f"#!/bin/sh\ncat > /dev/null\ncat '{played}'\n")
    binary.chmod(0o755)
    return binary


async def test_a_run_over_budget_fails_with_the_reason(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    """The recording reports $0.0123: over a $0.01 budget the run fails, plan or not."""
    start_worker(claude_bin=str(fake_claude(tmp_path, "claude-todos.jsonl")), max_budget_usd=0.01)
    tid = await submit(client, agent="claude")
    assert await wait_status(store, tid, DONE) is TaskStatus.FAILED
    reason = "budget exceeded: $0.0123 > HOOKAGENT_MAX_BUDGET_USD=$0.01"
    task = await store.tasks.get(tid)
    assert task.error == reason and task.plan is None
    messages = await logs(client, tid)
    assert f"[system] agent stopped: {reason}" in messages
    assert messages[-1] == f"[system] status failed: {reason}"
    assert "--max-budget-usd 0.01" in next(m for m in messages if "running " in m)


async def test_a_run_within_budget_is_not_stopped(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    start_worker(claude_bin=str(fake_claude(tmp_path, "claude-todos.jsonl")), max_budget_usd=0.02)
    tid = await submit(client, agent="claude")
    assert await wait_status(store, tid, DONE) is TaskStatus.PENDING_APPROVAL


async def test_runs_per_repo_are_limited_across_workers(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    """Two workers, one slot for the repository: the second task waits, then runs."""
    for _ in range(2):
        start_worker(agent_command=fake_agent("slow", "4", "0.25"), max_runs_per_repo=1)
    tids = [await submit(client), await submit(client)]
    for tid in tids:
        assert await wait_status(store, tid, DONE) is TaskStatus.PENDING_APPROVAL
    spans = []
    for tid in tids:
        at = {h.status: h.at for h in await store.tasks.history(tid)}
        spans.append((at[TaskStatus.DISCOVERING], at[TaskStatus.PENDING_APPROVAL]))
    (_, first_end), (second_start, _) = sorted(spans)
    assert second_start >= first_end, f"two runs of one repository at once: {spans}"
    waited = [await logs(client, tid) for tid in tids]
    notes = [m for log in waited for m in log if m.startswith("[system] waiting:")]
    assert notes == [
        "[system] waiting: 1 run of acme/payments-api in progress (HOOKAGENT_MAX_RUNS_PER_REPO=1)"
    ], "said once, by the task that waited"
    for log in waited:  # the hand-back was not a failed delivery
        assert any(m.startswith("[system] attempt 1 (delivery 1): planning") for m in log)
    # The worker frees the slot after the status it set (and its effects): nothing announces
    # the release, so the check is repeated for a bounded while.
    async with asyncio.timeout(10):
        while await store.redis.zcard(store.keys.repo_runs("acme/payments-api")) != 0:
            await asyncio.sleep(0.05)


async def test_a_failing_watchdog_fails_the_attempt_not_the_worker(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    """The stall watchdog's warning is refused (the lease moved on): the loop lives on."""
    start_worker(agent_command=fake_agent("hang"), stall_timeout=2, lease_seconds=30)
    stuck = await submit(client)
    await wait_for_line(store, stuck, "hanging now")
    # Another attempt takes the lease, as a reclaiming worker would: this worker's next log
    # write (the watchdog's stall warning) is fenced out.
    await store.tasks.claim(stuck, token="successor", phase=Phase.PLAN)
    survivor = await submit(client)
    # The same worker loop must go on taking jobs; before the fix it died here silently.
    await wait_for_line(store, survivor, "hanging now")
    log = await logs(client, stuck)
    assert not any("warning: no output" in m for m in log), "the fenced warning was not written"


async def test_a_cancel_mid_job_ends_the_worker_even_when_the_hand_back_fails(
    client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    """The hand-back meets a deleted queue (NOGROUP): its error must not eat the cancel.

    It did: the worker logged "unexpected error", took the next job and never stopped, and a
    test teardown waited 120 s for it.
    """
    own = settings.model_copy(update={"agent_command": fake_agent("hang")})
    worker = Worker(store=Store.build(store.redis, own), settings=own, agent=build_agent(own))
    running = asyncio.create_task(worker.run(asyncio.Event()))
    tid = await submit(client)
    await wait_for_line(store, tid, "hanging now")
    await store.redis.delete(store.keys.queue("jobs"))
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=15)
    assert done == {running}, "the worker went on after its cancel"

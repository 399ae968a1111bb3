"""End to end with the real Claude Code CLI (from npm) against the local Messages API stub."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.agents import build_agent
from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.loop import Worker
from hookagent.worker.sandbox import probe
from tests.anthropic_stub import MessagesStub, Turn
from tests.conftest import RunWorker
from tests.e2e.clis import cli_bin
from tests.github_stub import GitHubStub
from tests.helpers import FIXTURES, REPO, app_client, wait_for_line, wait_status

pytestmark = pytest.mark.e2e

SECRET = "gh-webhook-s3cret"
MEMORY = "Operator memory: name the function you change."


def claude_bin() -> str:
    """The CLI installed by the test command (cached outside the checkout), or on PATH."""
    return cli_bin("claude")


def use_stub(monkeypatch: pytest.MonkeyPatch, stub: MessagesStub, tmp_path: Path) -> None:
    """Point the CLI at the Messages API stub, with a fake key and a config dir of its own."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude-config"))


async def plan_from_sentry(client: httpx.AsyncClient, store: Store) -> tuple[str, TaskStatus]:
    """Send the Sentry fixture; the task id and the status its planning ended in."""
    body = (FIXTURES / "sentry-event-alert.json").read_bytes()
    response = await client.post(
        "/webhooks/sentry", content=body, headers={"content-type": "application/json"}
    )
    tid: str = response.json()["task_id"]
    final = await wait_status(
        store, tid, {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}, timeout=120
    )
    return tid, final


async def test_webhook_to_plan_with_the_real_cli(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    binary = claude_bin()
    turns = [
        Turn(
            tool="Bash", tool_input={"command": "cat README.md", "description": "Read the README"}
        ),
        Turn(text="PLAN: guard the empty-list case in app.py and add a test."),
    ]
    with MessagesStub(turns) as stub:
        use_stub(monkeypatch, stub, tmp_path)
        start_worker(agent="claude", claude_bin=binary, planning_timeout=120)
        tid, final = await plan_from_sentry(client, store)
        logs = (await client.get(f"/tasks/{tid}/logs", params={"limit": -1})).json()["logs"]
        messages = [e["message"] for e in logs]
        assert final is TaskStatus.PENDING_APPROVAL, messages
        # The CLI really ran the tool in the clone: the README's text came back as its result.
        assert "[stdout] Bash: cat README.md" in messages
        assert any(m.startswith("[stdout] tool result: # payments-api") for m in messages), messages
        tool_use = next(e for e in logs if e["message"] == "[stdout] Bash: cat README.md")
        assert tool_use["kind"] == "tool_use" and tool_use["raw"]["type"] == "assistant"
        # The prompt reached the model through stdin, with the Sentry context in it.
        first = stub.requests[0]["body"]["messages"][0]["content"]
        text = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first)
        assert "KeyError: 'currency'" in text
        task = await store.tasks.get(tid)
        assert task.plan == "PLAN: guard the empty-list case in app.py and add a test."
        assert task.session_id and task.num_turns == 2 and task.total_cost_usd is not None


async def test_plan_approve_execute_and_pull_request_with_the_real_cli(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    remotes: Path,
) -> None:
    binary = claude_bin()
    plan = [Turn(text="PLAN: add safe_total() that returns 0 for an empty list.")]
    execute = [
        Turn(
            tool="Bash",
            tool_input={
                "command": "printf '\\ndef safe_total(xs):\\n"
                "    return total(xs) if xs else 0\\n' >> app.py",
                "description": "Add safe_total",
            },
        ),
        Turn(text="Added safe_total to app.py."),
    ]
    with MessagesStub(plan, when={"Approved plan:": execute}) as stub, GitHubStub() as github:
        use_stub(monkeypatch, stub, tmp_path)
        start_worker(
            agent="claude",
            claude_bin=binary,
            planning_timeout=120,
            execution_timeout=120,
            github_api_url=github.url,
            github_token=SecretStr("ghp_e2e_token"),
        )
        tid, planned = await plan_from_sentry(client, store)
        assert planned is TaskStatus.PENDING_APPROVAL
        await client.post(f"/tasks/{tid}/approve", json={"comment": "small change please"})
        done = await wait_status(store, tid, {TaskStatus.COMPLETED, TaskStatus.FAILED}, timeout=120)
        messages = [e.message for e in (await store.logs.read(tid, offset=0, limit=-1))[0]]
        assert done is TaskStatus.COMPLETED, messages
        # Execution ran with edit permissions but never with --dangerously-skip-permissions.
        running = [m for m in messages if m.startswith("[system] running ")]
        assert "--permission-mode acceptEdits --allowedTools" in running[1]
        assert "dangerously" not in " ".join(running)
        task = await store.tasks.get(tid)
        assert task.pr_url and task.commit
        shown = subprocess.run(
            ["git", "-C", str(remotes / f"{REPO}.git"), "show", f"hookagent/{tid}:app.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "def safe_total(xs):" in shown
        [pull] = github.requests
        assert pull["body"]["head"] == f"hookagent/{tid}"
        assert "PLAN: add safe_total()" in pull["body"]["body"]
        # The approver's comment reached the model with the approved plan.
        execution_request = next(
            r
            for r in stub.requests
            if "Approved plan:" in json.dumps(r["body"].get("messages", [])[:1])
        )
        assert "small change please" in json.dumps(execution_request["body"]["messages"][0])


async def test_plan_under_bwrap_with_the_network_allowlist(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real CLI in its own network namespace reaches its model only through the proxy."""
    unusable = probe(network=True)
    if unusable is not None:
        pytest.skip(f"bubblewrap cannot sandbox on this machine: {unusable}")
    binary = claude_bin()
    turns = [
        Turn(tool="Bash", tool_input={"command": "cat README.md", "description": "Read it"}),
        Turn(text="PLAN: guard the empty-list case in app.py."),
    ]
    # The operator's config dir template: its CLAUDE.md (user memory) reaches the model
    # through the run's copy, which is where the CLI writes; the template stays as it was.
    template = tmp_path / "claude-template"
    template.mkdir()
    (template / "CLAUDE.md").write_text(f"{MEMORY}\n")
    with MessagesStub(turns) as stub:
        use_stub(monkeypatch, stub, tmp_path)  # http://127.0.0.1:PORT
        start_worker(
            agent="claude",
            claude_bin=binary,
            planning_timeout=120,
            sandbox="bwrap",
            claude_config_dir=template,
        )
        tid, final = await plan_from_sentry(client, store)
        messages = [e.message for e in (await store.logs.read(tid, offset=0, limit=-1))[0]]
        assert final is TaskStatus.PENDING_APPROVAL, messages
        assert any(m.endswith(" in a bwrap sandbox") for m in messages)
        assert "[stdout] Bash: cat README.md" in messages
        task = await store.tasks.get(tid)
        assert task.plan == "PLAN: guard the empty-list case in app.py."
    # The CLI's namespace holds only loopback: every request the stub got came through the
    # proxy, and the model endpoint was never refused.
    assert len(stub.requests) >= 2
    port = stub.url.rsplit(":", 1)[1]
    assert not [m for m in messages if m.startswith("[system] blocked") and m.endswith(port)]
    assert all(MEMORY in json.dumps(r["body"]) for r in stub.requests)
    assert [p.name for p in template.iterdir()] == ["CLAUDE.md"]


@pytest.mark.parametrize("size", [300 * 1024, 5 * 1024 * 1024], ids=["300KB", "5MB"])
async def test_a_long_result_line_reaches_the_plan_whole(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    # The CLI drops what it has not written yet when it exits, when its stdout is a pipe
    # (anthropics/claude-code#77112): the runner gives it files instead.
    binary = claude_bin()
    # Words and newlines, as a long plan has: the CLI's result line carries it all as JSON.
    plan = "PLAN: " + ("step: guard the empty-list case in app.py.\n" * (size // 44 + 1))
    with MessagesStub([Turn(text=plan)]) as stub:
        use_stub(monkeypatch, stub, tmp_path)
        start_worker(agent="claude", claude_bin=binary, planning_timeout=120)
        tid, final = await plan_from_sentry(client, store)
        task = await store.tasks.get(tid)
        assert final is TaskStatus.PENDING_APPROVAL, task.error
        assert task.plan == plan
        # The log keeps the result as an event, its message clipped to HOOKAGENT_LOG_LINE_MAX.
        logs = (await client.get(f"/tasks/{tid}/logs", params={"limit": -1})).json()["logs"]
        result = [e for e in logs if e["kind"] == "result"]
        assert len(result) == 1 and result[0]["message"].startswith("[stdout] result (success")
        assert not [e for e in logs if e["message"].startswith('[stdout] {"type"')]


@pytest.mark.timeout(300)  # three runs of the real CLI: planning, execution and the round
async def test_three_review_comments_make_one_round_with_the_real_cli(
    settings: Settings,
    redis: Redis,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    remotes: Path,
) -> None:
    binary = claude_bin()
    plan = [Turn(text="PLAN: add safe_total() that returns 0 for an empty list.")]
    execute = [
        Turn(tool="Bash", tool_input={"command": "printf '\\ndef safe_total(xs):\\n"
                                      "    return total(xs) if xs else 0\\n' >> app.py",
                                      "description": "Add safe_total"}),
        Turn(text="Added safe_total to app.py."),
    ]  # fmt: skip
    review = [
        Turn(tool="Bash", tool_input={"command": "printf '\\n# safe_total: 0 for []\\n' >> app.py",
                                      "description": "Answer the review"}),
        Turn(text="Documented safe_total as the reviewers asked."),
    ]  # fmt: skip
    markers = {"the feedback to address now": review, "Approved plan:": execute}
    with MessagesStub(plan, when=markers) as stub, GitHubStub() as github:
        use_stub(monkeypatch, stub, tmp_path)
        own = settings.model_copy(
            update={
                "agent": "claude", "claude_bin": binary, "planning_timeout": 120,
                "execution_timeout": 120, "github_api_url": github.url,
                "github_token": SecretStr("ghp_e2e_token"),
                "github_webhook_secret": SecretStr(SECRET), "github_approvers": "rev-alice",
                "feedback_debounce_s": 0.5,
            }
        )  # fmt: skip
        # Stopped by its event, not cancelled: the round's job is acked before the test ends.
        stop = asyncio.Event()
        worker = Worker(store=Store.build(redis, own), settings=own, agent=build_agent(own))
        running = asyncio.create_task(worker.run(stop))
        async with app_client(own, redis) as client, stopping(stop, running):
            tid, planned = await plan_from_sentry(client, store)
            assert planned is TaskStatus.PENDING_APPROVAL
            await client.post(f"/tasks/{tid}/approve")
            ended = {TaskStatus.COMPLETED, TaskStatus.FAILED}
            done = await wait_status(store, tid, ended, timeout=120)
            assert done is TaskStatus.COMPLETED
            number = (await store.tasks.get(tid)).pr_number
            assert number is not None
            for comment_id in (501, 502, 503):
                event = github.review_comment_event(number, comment_id, body="Document this")
                answer = await signed(client, "pull_request_review_comment", event, comment_id)
                assert answer.status_code == 202, answer.text
            await wait_for_line(store, tid, "status completed: review round 1 ", timeout=120)
        task = await store.tasks.get(tid)
        messages = [e.message for e in (await store.logs.read(tid, offset=0, limit=-1))[0]]
        assert task.review_rounds == 1 and task.error is None, messages
        log = subprocess.run(
            ["git", "-C", str(remotes / f"{REPO}.git"), "log", "--format=%s", f"hookagent/{tid}"],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
        assert log[0] == "hookagent: address review (round 1)"
        shown = subprocess.run(
            ["git", "-C", str(remotes / f"{REPO}.git"), "show", f"hookagent/{tid}:app.py"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "# safe_total: 0 for []" in shown
        assert sorted(r["comment_id"] for r in github.replies) == [501, 502, 503]
        # The round's one conversation held all three comments, fenced.
        opening = next(
            json.dumps(r["body"]["messages"][0])
            for r in stub.requests
            if "the feedback to address now" in json.dumps(r["body"].get("messages", [])[:1])
        )
        assert opening.count("Document this") == 3 and "untrusted_webhook_data" in opening


async def signed(
    client: httpx.AsyncClient, event: str, payload: dict[str, object], n: int
) -> httpx.Response:
    body = json.dumps(payload).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": f"e2e-{n}",
        "x-hub-signature-256": f"sha256={digest}",
    }
    return await client.post("/webhooks/github", content=body, headers=headers)


@contextlib.asynccontextmanager
async def stopping(stop: asyncio.Event, running: asyncio.Task[None]) -> AsyncIterator[None]:
    """Let the worker finish its job and stop when the block ends (or cancel it on a failure)."""
    try:
        yield
    finally:
        stop.set()
        try:
            async with asyncio.timeout(60):
                await running
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

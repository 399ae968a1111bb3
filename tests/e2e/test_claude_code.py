"""End to end with the real Claude Code CLI (from npm) against the local Messages API stub."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hookagent.models import TaskStatus
from hookagent.store import Store
from tests.anthropic_stub import MessagesStub, Turn
from tests.conftest import RunWorker
from tests.e2e.clis import cli_bin
from tests.github_stub import GitHubStub
from tests.helpers import FIXTURES, REPO, wait_status

pytestmark = pytest.mark.e2e


def claude_bin() -> str:
    """The CLI installed by the test command (cached outside the checkout), or on PATH."""
    return cli_bin("claude")


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
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")
        monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude-config"))
        start_worker(agent="claude", claude_bin=binary, planning_timeout=120)
        body = (FIXTURES / "sentry-event-alert.json").read_bytes()
        response = await client.post(
            "/webhooks/sentry", content=body, headers={"content-type": "application/json"}
        )
        tid = response.json()["task_id"]
        final = await wait_status(
            store, tid, {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}, timeout=120
        )
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
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")
        monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude-config"))
        start_worker(
            agent="claude",
            claude_bin=binary,
            planning_timeout=120,
            execution_timeout=120,
            github_api_url=github.url,
            github_token=SecretStr("ghp_e2e_token"),
        )
        body = (FIXTURES / "sentry-event-alert.json").read_bytes()
        response = await client.post(
            "/webhooks/sentry", content=body, headers={"content-type": "application/json"}
        )
        tid = response.json()["task_id"]
        planned = await wait_status(
            store, tid, {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}, timeout=120
        )
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

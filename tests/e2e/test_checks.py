"""Policy ``test`` with the real Claude Code CLI: a failing test, one fix turn, a draft PR."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hookagent.models import TaskStatus
from hookagent.store import Store
from tests.anthropic_stub import MessagesStub, Turn
from tests.conftest import RunWorker
from tests.e2e.test_claude_code import claude_bin, plan_from_sentry, use_stub
from tests.github_stub import GitHubStub
from tests.helpers import REPO, wait_status

pytestmark = pytest.mark.e2e

TEST = "python3 -B -c 'import app; assert app.total([]) == 0, \"total([]) is not 0\"'"


async def test_a_failing_test_gets_a_fix_turn_then_a_draft_pull_request(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = [Turn(text="PLAN: add safe_total() to app.py.")]
    execute = [
        Turn(
            tool="Bash",
            tool_input={
                "command": "printf '\\ndef safe_total(xs):\\n    return 0\\n' >> app.py",
                "description": "Add safe_total",
            },
        ),
        Turn(text="Added safe_total to app.py."),
    ]
    fix = [Turn(text="I could not find a fix that keeps the plan.")]
    policy = tmp_path / "hookagent.toml"
    policy.write_text(f'[repo."{REPO}"]\ntest = {json.dumps(TEST)}\n')
    # The fix turn's prompt holds the execution's too: its marker is looked for first.
    when = {"Test command:": fix, "Approved plan:": execute}
    with MessagesStub(plan, when=when) as stub, GitHubStub() as github:
        use_stub(monkeypatch, stub, tmp_path)
        start_worker(
            agent="claude",
            claude_bin=claude_bin(),
            planning_timeout=120,
            execution_timeout=120,
            github_api_url=github.url,
            github_token=SecretStr("ghp_e2e_token"),
            policy_file=policy,
        )
        tid, planned = await plan_from_sentry(client, store)
        assert planned is TaskStatus.PENDING_APPROVAL
        await client.post(f"/tasks/{tid}/approve", json={})
        done = await wait_status(store, tid, {TaskStatus.COMPLETED, TaskStatus.FAILED}, timeout=120)
        logs = (await client.get(f"/tasks/{tid}/logs", params={"limit": -1})).json()["logs"]
        messages = [e["message"] for e in logs]
        assert done is TaskStatus.COMPLETED, messages
        detail = (await client.get(f"/tasks/{tid}")).json()
    assert detail["checks"] == {"test": "failed"}
    assert "[system] test failed (exit code 1); fix turn 1 of 1" in messages
    # Both runs, before and after the fix turn: total([]) still divides by zero.
    failures = [e for e in logs if e["message"] == "[test] ZeroDivisionError: division by zero"]
    assert len(failures) == 2 and {e["stream"] for e in failures} == {"test"}, messages
    # The fix turn reached the model with the failure output fenced as data.
    fixing = [r for r in stub.requests if "Test command:" in json.dumps(r["body"]["messages"][:1])]
    assert fixing and "<untrusted_webhook_data>" in json.dumps(fixing[0]["body"]["messages"][0])
    assert "ZeroDivisionError" in json.dumps(fixing[0]["body"]["messages"][0])
    [pull] = github.requests
    assert pull["body"]["draft"] is True
    assert 'checks: {"test": "failed"}' in pull["body"]["body"]
    assert "ZeroDivisionError: division by zero" in pull["body"]["body"]

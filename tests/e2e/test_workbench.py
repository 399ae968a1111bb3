"""The workbench with the real Claude Code CLI: setup installs what the repository's tests
need, the CLI runs them, and the model and the operator's instructions of the phase reach the
Messages API (the local stub)."""

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
from tests.helpers import wait_status
from tests.worker.test_setup import TESTS, add_setup, policy_file

pytestmark = pytest.mark.e2e


async def test_the_real_cli_runs_tests_that_pass_because_setup_ran(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, remotes: Path,
) -> None:  # fmt: skip
    binary = claude_bin()
    add_setup(remotes, tmp_path)
    plan = [Turn(text="PLAN: run the tests, then add safe_total() to app.py.")]
    edit = "printf '\\ndef safe_total(xs):\\n    return total(xs) if xs else 0\\n' >> app.py"
    execute = [
        Turn(tool="Bash", tool_input={"command": TESTS, "description": "Run the tests"}),
        Turn(tool="Bash", tool_input={"command": edit, "description": "Add safe_total"}),
        Turn(text="The tests pass; added safe_total."),
    ]
    body = (
        'auto_approve = [{ source = "sentry" }]\n'
        'plan_model = "planner-model"\nexecute_model = "executor-model"\n'
        'instructions = "Operator says: run the tests first."\n'
    )
    with MessagesStub(plan, when={"Approved plan:": execute}) as stub, GitHubStub() as github:
        use_stub(monkeypatch, stub, tmp_path)
        start_worker(
            agent="claude", claude_bin=binary, planning_timeout=120, execution_timeout=120,
            github_api_url=github.url, github_token=SecretStr("ghp_e2e_token"),
            policy_file=policy_file(tmp_path, body),
        )  # fmt: skip
        tid, _ = await plan_from_sentry(client, store)
        done = await wait_status(store, tid, {TaskStatus.COMPLETED, TaskStatus.FAILED}, timeout=180)
        messages = [e.message for e in (await store.logs.read(tid, offset=0, limit=-1))[0]]
        assert done is TaskStatus.COMPLETED, messages
        assert any(m.startswith("[setup] cache miss") for m in messages), messages
        assert any(m.startswith("[setup] cache hit") for m in messages), "execution's setup"
        assert any(m.startswith("[stdout] tool result: tests passed 42") for m in messages), [
            m for m in messages if "tool" in m
        ]
        models = [r["body"].get("model") for r in stub.requests]
        texts = [json.dumps(r["body"].get("messages", [])[:1]) for r in stub.requests]
        planning = [m for m, t in zip(models, texts, strict=True) if "Approved plan:" not in t]
        executing = [m for m, t in zip(models, texts, strict=True) if "Approved plan:" in t]
        assert set(planning) == {"planner-model"} and set(executing) == {"executor-model"}
        assert all("Operator says: run the tests first." in t for t in texts)
        assert len(github.requests) == 1, "the pull request was opened"

"""End to end with the real Codex CLI (from npm) against the local Responses API stub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hookagent.models import TaskStatus
from hookagent.store import Store
from hookagent.worker import Worker
from tests.conftest import RunWorker
from tests.e2e.clis import cli_bin, entry, log_of, open_task, pushed, settle
from tests.github_stub import GitHubStub
from tests.openai_stub import Fault, Reply, ResponsesStub

pytestmark = pytest.mark.e2e

MODEL = "gpt-5.5"  # a model Codex knows: it then offers apply_patch as a freeform tool
KEY = "sk-codex-e2e-not-a-real-key"
PLAN = "## Plan\n\n- `total()` divides by `len(xs)`: return 0 for an empty list.\n- Add a test."
PATCH = """*** Begin Patch
*** Update File: app.py
@@
 def total(xs):
-    return sum(xs) / len(xs)
+    return sum(xs) / len(xs) if xs else 0
*** End Patch
"""
TEST_FILE = (
    "printf 'from app import total\\n\\n\\ndef test_empty():\\n    assert total([]) == 0\\n'"
    " > test_app.py"
)


@pytest.fixture(scope="module")
def api() -> Iterator[ResponsesStub]:
    """One Responses API stub for the module; each test scripts it."""
    with ResponsesStub() as stub:
        yield stub


@pytest.fixture
def codex(
    api: ResponsesStub, start_worker: RunWorker, monkeypatch: pytest.MonkeyPatch
) -> RunWorker:
    """Starts a worker running the real Codex CLI against the stub (the key in its env)."""
    binary = cli_bin("codex")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def start(**overrides: object) -> Worker:
        defaults: dict[str, object] = {
            "agent": "codex",
            "codex_bin": binary,
            "codex_base_url": f"{api.url}/v1",
            "agent_model": MODEL,
            "planning_timeout": 120,
            "execution_timeout": 120,
        }
        return start_worker(**(defaults | overrides))

    return start


async def test_plan_approve_execute_and_push_with_the_real_cli(
    client: httpx.AsyncClient,
    store: Store,
    api: ResponsesStub,
    codex: RunWorker,
    remotes: Path,
) -> None:
    plan = [Reply(tool="exec_command", arguments={"cmd": "cat README.md"}), Reply(text=PLAN)]
    execute = [
        Reply(tool="apply_patch", arguments=PATCH),
        Reply(tool="exec_command", arguments={"cmd": TEST_FILE}),
        Reply(text="Returned 0 for an empty list and added test_app.py."),
    ]
    api.script(plan, when={"Approved plan:": execute})
    with GitHubStub() as github:
        codex(github_api_url=github.url, github_token=SecretStr("ghp_e2e_token"))
        tid = await open_task(client)
        planned = await settle(store, tid)
        logs = await log_of(client, tid)
        assert planned is TaskStatus.PENDING_APPROVAL, [e["message"] for e in logs]
        task = await store.tasks.get(tid)
        assert task.plan == PLAN  # the markdown as the model wrote it
        # Every event became a typed line; the command's output came back as its result.
        used = entry(logs, "[stdout] Bash: /bin/bash -lc 'cat README.md'")
        assert used["kind"] == "tool_use" and used["raw"]["type"] == "item.started"
        result = entry(logs, "[stdout] tool result: ")  # a login shell may print first
        assert result["kind"] == "tool_result" and "# payments-api" in result["message"]
        assert entry(logs, "[stdout] ## Plan")["kind"] == "text"
        assert entry(logs, "[stdout] turn completed")["kind"] == "result"
        # The model setting, the fenced prompt and the key reached the API.
        first = api.requests[0]
        assert first["body"]["model"] == MODEL and first["body"]["stream"] is True
        assert first["headers"]["authorization"] == f"Bearer {KEY}"
        said = api.user_text(first)
        assert "<untrusted_webhook_data>" in said and "KeyError: 'currency'" in said

        await client.post(f"/tasks/{tid}/approve", json={"comment": "keep it small"})
        done = await settle(store, tid)
        logs = await log_of(client, tid)
        assert done is TaskStatus.COMPLETED, [e["message"] for e in logs]
    # Codex's own edit tool and its shell made the change; hookagent committed and pushed it.
    assert entry(logs, "[stdout] Edit: update ")["raw"]["item"]["type"] == "file_change"
    assert entry(logs, '[stdout] Bash: /bin/bash -lc "printf')["kind"] == "tool_use"
    branch = f"hookagent/{tid}"
    shown = pushed(remotes, branch, "app.py", "test_app.py")
    assert "return sum(xs) / len(xs) if xs else 0" in shown["app.py"]
    assert "assert total([]) == 0" in shown["test_app.py"]
    [pull] = github.requests
    assert pull["body"]["head"] == branch and "## Plan" in pull["body"]["body"]
    executed = next(r for r in api.requests if "Approved plan:" in api.user_text(r))
    assert "keep it small" in api.user_text(executed)
    # The key reached the CLI (above) but no log line.
    assert KEY not in json.dumps(logs)


async def test_an_api_error_fails_the_task_with_its_reason(
    client: httpx.AsyncClient, store: Store, api: ResponsesStub, codex: RunWorker
) -> None:
    api.script([Reply(text=PLAN)], faults=[Fault(400, "The model `gpt-5.5` does not exist")])
    codex()
    tid = await open_task(client)
    assert await settle(store, tid) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error is not None and "The model `gpt-5.5` does not exist" in task.error


async def test_a_fault_the_cli_retries_does_not_fail_the_task(
    client: httpx.AsyncClient, store: Store, api: ResponsesStub, codex: RunWorker
) -> None:
    """A 500 (retried quietly) and a dropped stream ("Reconnecting... 1/5"), then the plan.

    The CLI reports the reconnect as a top-level ``error`` event and goes on to
    ``turn.completed`` and exit 0: the task must not fail for it.
    """
    api.script([Reply(text=PLAN)], faults=[Fault(500, "upstream hiccup"), Fault(200)])
    codex()
    tid = await open_task(client)
    status = await settle(store, tid)
    logs = await log_of(client, tid)
    assert status is TaskStatus.PENDING_APPROVAL, [e["message"] for e in logs]
    assert entry(logs, "[stdout] codex: Reconnecting... 1/")["kind"] == "error"
    assert (await store.tasks.get(tid)).plan == PLAN
    assert len(api.requests) == 3

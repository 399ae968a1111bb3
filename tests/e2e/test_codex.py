"""End to end with the real Codex CLI (from npm) against the local Responses API stub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker import Worker
from hookagent.worker.run import AGENT_HOMES
from tests.conftest import RunWorker
from tests.e2e.clis import (
    check_homes_contained,
    cli_bin,
    entry,
    log_of,
    open_task,
    plan_and_execute,
    pushed,
    settle,
    snapshot,
)
from tests.github_stub import GitHubStub
from tests.openai_stub import Fault, Reply, ResponsesStub
from tests.worker.test_sandbox import needs_bwrap

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
# In the operator's template AGENTS.md: Codex sends it to the model with the task.
MARKER = "Template instructions: name the function you change."
TEST_FILE = (
    "printf 'from app import total\\n\\n\\ndef test_empty():\\n    assert total([]) == 0\\n'"
    " > test_app.py"
)


# The model's turns: read the README and plan; patch, add a test and report.
PLAN_TURNS = [Reply(tool="exec_command", arguments={"cmd": "cat README.md"}), Reply(text=PLAN)]
EXECUTE_TURNS = [
    Reply(tool="apply_patch", arguments=PATCH),
    Reply(tool="exec_command", arguments={"cmd": TEST_FILE}),
    Reply(text="Returned 0 for an empty list and added test_app.py."),
]


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
    return codex_starter(api, start_worker, monkeypatch)


def codex_starter(
    api: ResponsesStub, start_worker: RunWorker, monkeypatch: pytest.MonkeyPatch
) -> RunWorker:
    """What the ``codex`` fixture gives, for a module whose ``api`` is another stub."""
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
    api.script(PLAN_TURNS, when={"Approved plan:": EXECUTE_TURNS})
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


@needs_bwrap
async def test_under_bwrap_with_a_template_home(
    client: httpx.AsyncClient,
    store: Store,
    api: ResponsesStub,
    codex: RunWorker,
    remotes: Path,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Plan, approve, execute and push in our sandbox, Codex's own one off inside it.

    Its model endpoint (the stub) is the one the egress proxy allows. The operator's
    template reaches the run as a copy (its AGENTS.md read by the CLI, its profile kept),
    the template itself unchanged; each run's home is gone once the run ends.
    """
    template = tmp_path / "codex-template"
    template.mkdir()
    (template / "AGENTS.md").write_text(f"{MARKER}\n")
    (template / "config.toml").write_text('[profiles.quiet]\nmodel_reasoning_effort = "low"\n')
    before = snapshot(template)
    api.script(PLAN_TURNS, when={"Approved plan:": EXECUTE_TURNS})
    tid, planning, logs = await plan_and_execute(
        client, store, codex, sandbox="bwrap", codex_home=template
    )
    running = entry(planning, "[system] running ")["message"]
    assert "--sandbox danger-full-access" in running and running.endswith(" in a bwrap sandbox")
    assert "# payments-api" in entry(planning, "[stdout] tool result: ")["message"]
    shown = pushed(remotes, f"hookagent/{tid}", "app.py", "test_app.py")
    assert "return sum(xs) / len(xs) if xs else 0" in shown["app.py"]
    assert "assert total([]) == 0" in shown["test_app.py"]
    # The template's instructions reached the model in both runs, through the copy.
    assert all(MARKER in json.dumps(r["body"]) for r in api.requests)
    check_homes_contained(template, before, settings.data_dir / AGENT_HOMES, logs, api.url)


async def test_a_template_choosing_the_provider_fails_the_task_by_its_name(
    client: httpx.AsyncClient, store: Store, api: ResponsesStub, codex: RunWorker, tmp_path: Path
) -> None:
    """Refused before the CLI starts: hookagent decides where the model (and the key) go."""
    template = tmp_path / "codex-template"
    template.mkdir()
    (template / "config.toml").write_text('model_provider = "openai"\n')
    api.script([Reply(text=PLAN)])
    codex(codex_home=template)
    tid = await open_task(client)
    assert await settle(store, tid) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error == (
        "HOOKAGENT_CODEX_HOME: config.toml sets model_provider, which hookagent controls"
    )
    assert api.requests == []

"""End to end with the real Gemini CLI (from npm) against the local Gemini API stub."""

from __future__ import annotations

import json
import subprocess
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
from tests.gemini_stub import ConversationStub, Fault, Reply
from tests.github_stub import GitHubStub
from tests.helpers import REPO
from tests.worker.test_sandbox import needs_bwrap

pytestmark = pytest.mark.e2e

MODEL = "gemini-2.5-pro"
KEY = "gemini-e2e-not-a-real-key"
NARRATION = "Looking at the repository first."
PLAN = "## Plan\n\n- `total()` divides by `len(xs)`: return 0 for an empty list.\n- Add a test."
# In the operator's template GEMINI.md: the CLI sends it to the model as context.
MARKER = "Template context: name the function you change."
TEST_FILE = "from app import total\n\n\ndef test_empty():\n    assert total([]) == 0\n"


# The model's edit: the CLI's ``replace`` tool on app.py.
REPLACE = {
    "file_path": "app.py",
    "old_string": "    return sum(xs) / len(xs)",
    "new_string": "    return sum(xs) / len(xs) if xs else 0",
    "instruction": "Return 0 for an empty list.",
}


@pytest.fixture(scope="module")
def api() -> Iterator[ConversationStub]:
    """One Gemini API stub for the module; each test scripts it."""
    with ConversationStub() as stub:
        yield stub


@pytest.fixture
def gemini(
    api: ConversationStub, start_worker: RunWorker, monkeypatch: pytest.MonkeyPatch
) -> RunWorker:
    """Starts a worker running the real Gemini CLI against the stub (the key in its env)."""
    binary = cli_bin("gemini")
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", api.url)

    def start(**overrides: object) -> Worker:
        defaults: dict[str, object] = {
            "agent": "gemini",
            "gemini_bin": binary,
            "agent_model": MODEL,
            "planning_timeout": 120,
            "execution_timeout": 120,
        }
        return start_worker(**(defaults | overrides))

    return start


async def test_plan_approve_execute_and_push_with_the_real_cli(
    client: httpx.AsyncClient,
    store: Store,
    api: ConversationStub,
    gemini: RunWorker,
    remotes: Path,
) -> None:
    """Also the regressions: a fresh clone is trusted, narration stays out of the plan."""
    plan = [
        Reply(text=NARRATION, tool="read_file", arguments={"file_path": "README.md"}),
        Reply(tool="read_file", arguments={"file_path": "missing.py"}),
        Reply(text=PLAN),
    ]
    execute = [
        Reply(tool="replace", arguments=REPLACE),
        Reply(tool="write_file", arguments={"file_path": "test_app.py", "content": TEST_FILE}),
        Reply(text="Returned 0 for an empty list and added test_app.py."),
    ]
    api.script(plan, when={"Approved plan:": execute})
    with GitHubStub() as github:
        gemini(github_api_url=github.url, github_token=SecretStr("ghp_e2e_token"))
        tid = await open_task(client)
        planned = await settle(store, tid)
        logs = await log_of(client, tid)
        assert planned is TaskStatus.PENDING_APPROVAL, [e["message"] for e in logs]
        task = await store.tasks.get(tid)
        assert task.plan == PLAN  # the heading intact, the narration not glued on
        # Every event became a typed line; a result names what it answers, with its output.
        assert entry(logs, f"[stdout] {NARRATION[:10]}")["kind"] == "text"
        used = entry(logs, "[stdout] read_file: README.md")
        assert used["kind"] == "tool_use" and used["raw"]["type"] == "tool_use"
        read = entry(logs, "[stdout] tool result: read_file: README.md")
        assert read["kind"] == "tool_result" and read["raw"]["type"] == "tool_result"
        missing = entry(logs, "[stdout] tool error: ")
        assert missing["kind"] == "error" and "missing.py" in missing["message"]
        assert entry(logs, "[stdout] result (success")["kind"] == "result"
        # The model setting, the fenced prompt and the key reached the API.
        first = api.conversations()[0]
        assert f"/v1beta/models/{MODEL}:streamGenerateContent" in first["path"]
        assert first["headers"]["x-goog-api-key"] == KEY
        said = api.user_text(first["body"])
        assert "<untrusted_webhook_data>" in said and "KeyError: 'currency'" in said

        await client.post(f"/tasks/{tid}/approve", json={"comment": "keep it small"})
        done = await settle(store, tid)
        logs = await log_of(client, tid)
        assert done is TaskStatus.COMPLETED, [e["message"] for e in logs]
    # The CLI's own edit tools made the change; hookagent committed and pushed it.
    assert entry(logs, "[stdout] replace: app.py")["kind"] == "tool_use"
    assert entry(logs, "[stdout] tool result: write_file: test_app.py")["kind"] == "tool_result"
    branch = f"hookagent/{tid}"
    shown = pushed(remotes, branch, "app.py", "test_app.py")
    assert "return sum(xs) / len(xs) if xs else 0" in shown["app.py"]
    assert shown["test_app.py"] == TEST_FILE
    [pull] = github.requests
    assert pull["body"]["head"] == branch and PLAN in pull["body"]["body"]
    assert NARRATION not in pull["body"]["body"]
    executed = next(r for r in api.conversations() if "Approved plan:" in api.user_text(r["body"]))
    assert "keep it small" in api.user_text(executed["body"])
    assert KEY not in json.dumps(logs)


def commit_files(remotes: Path, files: dict[str, str]) -> None:
    """Push a commit adding ``files`` to the repository's main branch."""
    seed = remotes / "seed" / REPO
    for name, text in files.items():
        (seed / name).parent.mkdir(parents=True, exist_ok=True)
        (seed / name).write_text(text)
    author = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    bare = str(remotes / f"{REPO}.git")
    for args in (["add", "-A"], [*author, "commit", "-qm", "env"], ["push", "-q", bare, "main"]):
        subprocess.run(["git", "-C", str(seed), *args], check=True, capture_output=True)


async def test_a_repository_env_file_cannot_redirect_the_cli(
    client: httpx.AsyncClient,
    store: Store,
    api: ConversationStub,
    gemini: RunWorker,
    remotes: Path,
) -> None:
    """The trusted CLI loads the clone's ``.gemini/.env``: it must not reroute the API key.

    The endpoint is the operator's; the proxies, unset by the operator, are pinned empty,
    so the repository's values are not taken. Its plain ``.env`` and the operator's own one
    above the data dir are not loaded at all (their header would reach the API).
    """
    with ConversationStub() as trap:
        trap.script([Reply(text="## Trapped")])
        commit_files(
            remotes,
            {
                ".gemini/.env": "".join(
                    f"{name}={trap.url}\n"
                    for name in ("GOOGLE_GEMINI_BASE_URL", "HTTPS_PROXY", "HTTP_PROXY")
                ),
            },
        )
        api.script([Reply(text=PLAN)])
        gemini(planning_timeout=30)  # rerouted, the CLI would wait on the trap
        tid = await open_task(client)
        status = await settle(store, tid)
        logs = await log_of(client, tid)
        assert status is TaskStatus.PENDING_APPROVAL, [e["message"] for e in logs]
    assert trap.requests == []
    assert api.conversations() and (await store.tasks.get(tid)).plan == PLAN


async def test_an_env_file_above_the_clone_is_not_loaded(
    client: httpx.AsyncClient,
    store: Store,
    api: ConversationStub,
    gemini: RunWorker,
    remotes: Path,
    settings: Settings,
) -> None:
    """The operator's ``.env`` next to the data dir (hookagent's secrets, say) stays out."""
    leak = "X-Leak: operator-secret"
    commit_files(remotes, {".env": f"GEMINI_CLI_CUSTOM_HEADERS={leak}\n"})
    (settings.data_dir.parent / ".env").write_text(f"GEMINI_CLI_CUSTOM_HEADERS={leak}\n")
    api.script([Reply(text=PLAN)])
    gemini()
    tid = await open_task(client)
    assert await settle(store, tid) is TaskStatus.PENDING_APPROVAL
    assert api.requests and all("x-leak" not in r["headers"] for r in api.requests)


async def test_an_api_error_fails_the_task_with_its_reason(
    client: httpx.AsyncClient, store: Store, api: ConversationStub, gemini: RunWorker
) -> None:
    reason = f"models/{MODEL} is not found for API version v1beta"
    api.script([Reply(text=PLAN)], faults=[Fault(400, reason)])
    gemini()
    tid = await open_task(client)
    assert await settle(store, tid) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error is not None and reason in task.error, task.error


async def test_a_fault_the_cli_retries_does_not_fail_the_task(
    client: httpx.AsyncClient, store: Store, api: ConversationStub, gemini: RunWorker
) -> None:
    """A 500, then a stream that ends without a finish reason: the CLI asks again by itself.

    The broken stream carries no text: the CLI 0.61 would print a retried message's
    first part twice, with nothing in its output to tell the retry apart.
    """
    api.script([Reply(text=PLAN)], faults=[Fault(500, "upstream hiccup"), Fault(200)])
    gemini()
    tid = await open_task(client)
    status = await settle(store, tid)
    logs = await log_of(client, tid)
    assert status is TaskStatus.PENDING_APPROVAL, [e["message"] for e in logs]
    assert (await store.tasks.get(tid)).plan == PLAN
    assert len(api.conversations()) == 3


@needs_bwrap
async def test_under_bwrap_with_a_template_home(
    client: httpx.AsyncClient,
    store: Store,
    api: ConversationStub,
    gemini: RunWorker,
    remotes: Path,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Plan, approve, execute and push in our sandbox, the stub reached through the proxy.

    The operator's template reaches the run as a copy (its GEMINI.md read by the CLI, its
    settings kept under ours), the template itself unchanged; each run's home is gone.
    """
    template = tmp_path / "gemini-template"
    (template / ".gemini").mkdir(parents=True)
    (template / ".gemini" / "GEMINI.md").write_text(f"{MARKER}\n")
    chosen = {"security": {"auth": {"selectedType": "oauth-personal"}}, "ui": {"hideTips": True}}
    (template / ".gemini" / "settings.json").write_text(json.dumps(chosen))
    before = snapshot(template)
    api.script(
        [Reply(tool="read_file", arguments={"file_path": "README.md"}), Reply(text=PLAN)],
        when={"Approved plan:": [Reply(tool="replace", arguments=REPLACE), Reply(text="Done.")]},
    )
    tid, planning, logs = await plan_and_execute(
        client, store, gemini, sandbox="bwrap", gemini_home=template
    )
    assert entry(planning, "[system] running ")["message"].endswith(" in a bwrap sandbox")
    read = entry(planning, "[stdout] tool result: read_file: README.md")
    assert read["kind"] == "tool_result"
    shown = pushed(remotes, f"hookagent/{tid}", "app.py")
    assert "return sum(xs) / len(xs) if xs else 0" in shown["app.py"]
    # The template's context reached the model through the copy; API-key auth stayed ours.
    conversations = api.conversations()
    assert conversations and all(MARKER in json.dumps(c["body"]) for c in conversations)
    assert all(c["headers"]["x-goog-api-key"] == KEY for c in conversations)
    check_homes_contained(template, before, settings.data_dir / AGENT_HOMES, logs, api.url)

"""Quotas park, they don't fail: the real CLIs against their API stubs answering 429s.

Each CLI retries a 429 by itself first; its retries are kept few (Claude Code's
``CLAUDE_CODE_MAX_RETRIES``), and the stubs' ``Retry-After`` short, so a test takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.run import AGENT_HOMES
from tests.anthropic_stub import MessagesStub, Turn
from tests.conftest import RunWorker
from tests.e2e import test_codex as codex_e2e
from tests.e2e.clis import cli_bin, entry, log_of, open_task, plan_and_execute, pushed, settle
from tests.e2e.test_claude_code import plan_from_sentry, use_stub
from tests.gemini_stub import ConversationStub, Reply
from tests.model_stub import Fault
from tests.openai_stub import ResponsesStub
from tests.worker.test_policies import policy_file
from tests.worker.test_sandbox import needs_bwrap

pytestmark = pytest.mark.e2e

PLAN = "PLAN: guard the empty-list case in app.py."
LIMITED = "Number of request tokens has exceeded your per-minute rate limit"


def session_of(request: dict[str, Any]) -> str:
    """The Claude Code session a Messages API request belongs to (its metadata says)."""
    user = json.loads(request["body"]["metadata"]["user_id"])
    session: str = user["session_id"]
    return session


@pytest.mark.parametrize("sandbox", ["none", pytest.param("bwrap", marks=needs_bwrap)])
async def test_claude_waits_for_the_quota_and_resumes_its_session(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    sandbox: str,
) -> None:
    """Under bwrap the session lives in the task's copy of the config dir template."""
    turns = [
        Turn(tool="Bash", tool_input={"command": "cat README.md", "description": "Read it"}),
        Turn(text=PLAN),
    ]
    # The first call goes through; the next and the CLI's one retry get 429, Retry-After 1.
    limited = Fault(429, LIMITED, retry_after=1)
    faults: list[Fault | None] = [None, limited, limited]
    with MessagesStub(turns, faults=faults) as stub:
        use_stub(monkeypatch, stub, tmp_path)
        monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "1")
        template = tmp_path / "claude-template"
        template.mkdir()
        start_worker(
            agent="claude",
            claude_bin=cli_bin("claude"),
            planning_timeout=120,
            sandbox=sandbox,
            claude_config_dir=template if sandbox == "bwrap" else None,
        )
        tid, final = await plan_from_sentry(client, store)
        logs = await log_of(client, tid)
        messages = [e["message"] for e in logs]
        assert final is TaskStatus.PENDING_APPROVAL, messages
        waiting = entry(logs, "[system] waiting for the model quota until ")
        assert waiting["message"].endswith(
            f"(claude, API Error: Request rejected (429) · {LIMITED})"
        )
        resumed = entry(logs, "[system] resuming session ")
        session = resumed["message"].split()[3]
        running = [m for m in messages if m.startswith("[system] running ")]
        assert f"--resume {session}" in running[-1] and "--resume" not in running[0]
        task = await store.tasks.get(tid)
        assert task.plan == PLAN and task.error is None
    conversation = [r for r in stub.requests if r["body"].get("tools")]
    # One session from the first call to the last: the resumed run sent the conversation so
    # far (the tool call and its result), and nothing was asked twice.
    assert {session_of(r) for r in conversation} == {session}
    last = conversation[-1]["body"]["messages"]
    said = json.dumps(last)
    assert "KeyError: 'currency'" in json.dumps(last[0]) and "cat README.md" in said
    assert "quota ran out before you finished" in said
    assert said.count("KeyError: 'currency'") == json.dumps(last[0]).count("KeyError: 'currency'")
    assert await store.quota.parked(tid) is None
    # The home kept for the resumed run is gone with it; the template is as it was.
    assert not (settings.data_dir / AGENT_HOMES / tid).exists()
    assert list(template.iterdir()) == []


async def test_claude_out_of_quota_past_the_cap_hands_the_task_to_codex(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    remotes: Path,
) -> None:
    """A reset two hours away, a one hour cap: Codex plans and executes from the start."""
    policy = policy_file(tmp_path, 'fallback_agents = ["codex", "gemini"]\n')
    faults: list[Fault | None] = [Fault(429, f"{LIMITED}. Please try again in 2h.")]
    with MessagesStub([Turn(text="never")], faults=faults) as claude, ResponsesStub() as codex:
        codex.script(codex_e2e.PLAN_TURNS, when={"Approved plan:": codex_e2e.EXECUTE_TURNS})
        use_stub(monkeypatch, claude, tmp_path)
        monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "0")
        monkeypatch.setenv("OPENAI_API_KEY", codex_e2e.KEY)
        tid, planning, logs = await plan_and_execute(
            client,
            store,
            start_worker,
            agent="claude",
            claude_bin=cli_bin("claude"),
            codex_bin=cli_bin("codex"),
            codex_base_url=f"{codex.url}/v1",
            agent_model=codex_e2e.MODEL,
            planning_timeout=120,
            execution_timeout=120,
            policy_file=policy,
        )
    handed = entry(planning, "[system] claude's quota wait (7200s) would pass ")
    assert handed["message"].endswith("codex takes the plan phase from the start")
    messages = [e["message"] for e in logs]
    attempts = [m for m in messages if m.startswith("[system] attempt ")]
    assert ["claude" in attempts[0], *("with codex" in a for a in attempts[1:])] == [True] * 3
    task = await store.tasks.get(tid)
    assert task.plan == codex_e2e.PLAN and task.agent == "codex"
    assert "KeyError: 'currency'" in codex.user_text(codex.requests[0])
    shown = pushed(remotes, f"hookagent/{tid}", "app.py")
    assert "return sum(xs) / len(xs) if xs else 0" in shown["app.py"]
    # Claude's wall is recorded, until the cap at most; one task's hit holds no other back.
    quota = await store.quota.state("claude")
    assert quota is not None and quota.remaining() <= 3600 and not quota.shared


def resumed(logs: list[dict[str, Any]], agent: str) -> str:
    """The session id the task's second run resumed (after the log showed the wait)."""
    entry(logs, "[system] waiting for the model quota until ")
    line: str = entry(logs, "[system] resuming session ")["message"]
    assert line.endswith(f" of {agent}"), line
    return line.split()[3]


async def test_codex_waits_for_the_quota_and_resumes_its_thread(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Codex shows no Retry-After (its retries use it): the backoff, capped at 2 s here."""
    limited = Fault(429, LIMITED, retry_after=1)
    with ResponsesStub() as codex:
        # The README read goes through; the next call and Codex's five retries get 429.
        codex.script(codex_e2e.PLAN_TURNS, faults=[None, *[limited] * 6])
        monkeypatch.setenv("OPENAI_API_KEY", codex_e2e.KEY)
        start_worker(
            agent="codex",
            codex_bin=cli_bin("codex"),
            codex_base_url=f"{codex.url}/v1",
            agent_model=codex_e2e.MODEL,
            planning_timeout=120,
            quota_wait_max=2,
        )
        tid = await open_task(client)
        planned = await settle(store, tid)
        logs = await log_of(client, tid)
        assert planned is TaskStatus.PENDING_APPROVAL, [e["message"] for e in logs]
    thread = resumed(logs, "codex")
    running = [e["message"] for e in logs if e["message"].startswith("[system] running ")]
    assert running[-1].endswith(f" resume {thread} -")
    assert (await store.tasks.get(tid)).plan == codex_e2e.PLAN
    # The resumed thread sent the conversation so far: the README read and its output.
    last = codex.requests[-1]["body"]["input"]
    kinds = [item.get("type") for item in last if isinstance(item, dict)]
    assert "function_call" in kinds and "function_call_output" in kinds
    assert "quota ran out before you finished" in codex.user_text(codex.requests[-1])


async def test_gemini_waits_for_the_quota_and_resumes_its_session(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A quota the API says is gone ("limit: 0"): the CLI stops at once, with the API's wait."""
    exhausted = Fault(
        429,
        "You exceeded your current quota, please check your plan and billing details. "
        "Quota exceeded for metric: generate_content_free_tier_requests, limit: 0. "
        "Please retry in 1s.",
    )
    plan = [Reply(tool="read_file", arguments={"file_path": "README.md"}), Reply(text=PLAN)]
    with ConversationStub() as gemini:
        gemini.script(plan, faults=[None, exhausted])
        monkeypatch.setenv("GEMINI_API_KEY", "gemini-e2e-not-a-real-key")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.url)
        start_worker(
            agent="gemini",
            gemini_bin=cli_bin("gemini"),
            agent_model="gemini-2.5-pro",
            planning_timeout=120,
        )
        tid = await open_task(client)
        planned = await settle(store, tid)
        logs = await log_of(client, tid)
        assert planned is TaskStatus.PENDING_APPROVAL, [e["message"] for e in logs]
    session = resumed(logs, "gemini")
    waiting = entry(logs, "[system] waiting for the model quota until ")["message"]
    assert "(gemini, [API Error: You exceeded your current quota" in waiting
    assert (await store.tasks.get(tid)).plan == PLAN
    conversations = gemini.conversations()
    last = json.dumps(conversations[-1]["body"]["contents"])
    assert "functionResponse" in last and "KeyError: 'currency'" in last
    assert session in entry(logs, "[stdout] session ")["message"]


async def test_claude_resumes_an_execution_in_the_workspace_it_left(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    remotes: Path,
) -> None:
    """The edit made before the quota ran out is in the pushed change: nothing done twice."""
    edit = "printf '\\ndef safe_total(xs):\\n    return total(xs) if xs else 0\\n' >> app.py"
    execute = [
        Turn(tool="Bash", tool_input={"command": edit, "description": "Add safe_total"}),
        Turn(text="Added safe_total to app.py."),
    ]
    limited = Fault(429, LIMITED, retry_after=1)
    # The plan and the execution's first call go through; then the quota runs out.
    faults: list[Fault | None] = [None, None, limited, limited]
    stub = MessagesStub([Turn(text=PLAN)], when={"Approved plan:": execute}, faults=faults)
    with stub:
        use_stub(monkeypatch, stub, tmp_path)
        monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "1")
        tid, _, logs = await plan_and_execute(
            client,
            store,
            start_worker,
            agent="claude",
            claude_bin=cli_bin("claude"),
            planning_timeout=120,
            execution_timeout=120,
        )
    resumed(logs, "claude")
    shown = pushed(remotes, f"hookagent/{tid}", "app.py")["app.py"]
    assert shown.count("def safe_total(xs):") == 1
    edits = [e for e in logs if e["message"].startswith("[stdout] Bash: printf")]
    assert len(edits) == 1  # the resumed session did not run it again

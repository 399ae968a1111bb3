"""A policy's MCP server, shown to the real Claude Code, Codex and Gemini CLIs, its call logged."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hookagent.models import TaskStatus
from hookagent.store import Store
from hookagent.worker.sandbox import probe
from tests.anthropic_stub import MessagesStub, Turn
from tests.conftest import RunWorker
from tests.e2e.clis import entry, log_of, open_task, settle
from tests.e2e.test_claude_code import claude_bin, plan_from_sentry, use_stub
from tests.e2e.test_codex import PLAN as CODEX_PLAN
from tests.e2e.test_codex import codex_starter
from tests.e2e.test_gemini import PLAN as GEMINI_PLAN
from tests.e2e.test_gemini import api, gemini
from tests.gemini_stub import ConversationStub, Reply
from tests.helpers import REPO
from tests.openai_stub import TOOL_SEARCH, ResponsesStub
from tests.openai_stub import Reply as CodexReply

pytestmark = pytest.mark.e2e
__all__ = ["api", "gemini"]  # fixtures, imported to be used here

SERVER = Path(__file__).resolve().parent.parent / "mcp_server.py"
# Its name says nothing of a secret: only the policy's ``env`` makes it one.
SECRET_NAME = "GLOSSARY_AUTH"
SECRET = "glossary-auth-4c1f9e0b7d"


def mcp_policy(tmp_path: Path) -> Path:
    """A policy giving the repository the test server as ``glossary``."""
    path = tmp_path / "hookagent.toml"
    path.write_text(
        f'[repo."{REPO}".mcp_servers.glossary]\n'
        f"command = {json.dumps(sys.executable)}\n"
        f'args = ["-I", {json.dumps(str(SERVER))}]\n'
        f'env = ["{SECRET_NAME}"]\n'
    )
    return path


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
async def test_the_cli_sees_the_servers_tools_and_its_call_is_logged(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sandbox: str,
) -> None:
    if sandbox == "bwrap" and (unusable := probe(network=True)) is not None:
        pytest.skip(f"bubblewrap cannot sandbox on this machine: {unusable}")
    monkeypatch.setenv(SECRET_NAME, SECRET)
    outside = tmp_path / "outside.txt"  # on the host, not in the sandbox
    outside.write_text("host file\n")
    turns = [
        Turn(tool="mcp__glossary__lookup", tool_input={"query": "currency", "env": SECRET_NAME}),
        Turn(tool="mcp__glossary__where", tool_input={"path": str(outside)}),
        Turn(text="PLAN: use the glossary's word for currency in app.py."),
    ]
    with MessagesStub(turns) as stub:
        use_stub(monkeypatch, stub, tmp_path)
        start_worker(
            agent="claude",
            claude_bin=claude_bin(),
            planning_timeout=120,
            sandbox=sandbox,
            policy_file=mcp_policy(tmp_path),
        )
        tid, final = await plan_from_sentry(client, store)
        logs = (await client.get(f"/tasks/{tid}/logs", params={"limit": -1})).json()["logs"]
    messages = [e["message"] for e in logs]
    assert final is TaskStatus.PENDING_APPROVAL, messages
    # The model was offered the server's tools under Claude Code's MCP names.
    offered = {tool["name"] for tool in stub.requests[0]["body"].get("tools", [])}
    assert {"mcp__glossary__lookup", "mcp__glossary__where"} <= offered, sorted(offered)
    # Its call shows like any other tool's, and the server answered it with the secret,
    # which the log shows redacted.
    call = next(e for e in logs if e["message"] == "[stdout] mcp__glossary__lookup: currency")
    assert call["kind"] == "tool_use"
    result = "[stdout] tool result: found currency env=[REDACTED:secret]"
    assert result in messages, messages
    assert SECRET not in json.dumps(logs)
    # The server ran where the CLI runs: in the sandbox it cannot see the host's files.
    seen = "True" if sandbox == "none" else "False"
    assert f"[stdout] tool result: exists={seen}" in messages, messages
    running = next(m for m in messages if m.startswith("[system] running "))
    assert SECRET not in running


async def test_gemini_sees_the_servers_tools_and_its_call_is_logged(
    client: httpx.AsyncClient,
    store: Store,
    api: ConversationStub,
    gemini: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real Gemini CLI, given the server by its settings.json, offers and calls its tool."""
    monkeypatch.setenv(SECRET_NAME, SECRET)
    lookup = {"query": "currency", "env": SECRET_NAME}
    api.script([Reply(tool="mcp_glossary_lookup", arguments=lookup), Reply(text=GEMINI_PLAN)])
    gemini(policy_file=mcp_policy(tmp_path))
    tid = await open_task(client)
    status = await settle(store, tid)
    logs = await log_of(client, tid)
    messages = [e["message"] for e in logs]
    assert status is TaskStatus.PENDING_APPROVAL, messages
    declared = json.dumps(api.conversations()[0]["body"].get("tools", []))
    assert '"mcp_glossary_lookup"' in declared and '"mcp_glossary_where"' in declared
    assert entry(logs, "[stdout] mcp_glossary_lookup: ")["kind"] == "tool_use"
    result = entry(logs, "[stdout] tool result: mcp_glossary_lookup")["message"]
    assert "found currency env=[REDACTED:secret]" in result, messages
    assert SECRET not in json.dumps(logs)


@pytest.fixture(scope="module")
def responses() -> Iterator[ResponsesStub]:
    """A Responses API stub for Codex (``api`` here is Gemini's)."""
    with ResponsesStub() as stub:
        yield stub


def outputs(request: dict[str, Any]) -> dict[str, str]:
    """The text of every function call's output one request carries, by its call's name."""
    items = [i for i in request["body"].get("input", []) if isinstance(i, dict)]
    names = {i.get("call_id"): i.get("name") for i in items if i.get("type") == "function_call"}
    return {
        str(names.get(i.get("call_id"))): json.dumps(i.get("output"))
        for i in items
        if i.get("type") == "function_call_output"
    }


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
async def test_codex_finds_the_servers_tools_by_tool_search_and_its_call_is_logged(
    client: httpx.AsyncClient,
    store: Store,
    responses: ResponsesStub,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sandbox: str,
) -> None:
    """The real Codex CLI offers no MCP tool up front, only ``tool_search``: the model
    searches, gets the server's tools as the ``mcp__glossary`` namespace, and calls them."""
    if sandbox == "bwrap" and (unusable := probe(network=True)) is not None:
        pytest.skip(f"bubblewrap cannot sandbox on this machine: {unusable}")
    monkeypatch.setenv(SECRET_NAME, SECRET)
    outside = tmp_path / "outside.txt"  # on the host, not in the sandbox
    outside.write_text("host file\n")
    glossary = "mcp__glossary"
    lookup = {"query": "currency", "env": SECRET_NAME}
    responses.script(
        [
            CodexReply(tool=TOOL_SEARCH, arguments={"query": "glossary lookup"}),
            CodexReply(tool="lookup", namespace=glossary, arguments=lookup),
            CodexReply(tool="where", namespace=glossary, arguments={"path": str(outside)}),
            CodexReply(text=CODEX_PLAN),
        ]
    )
    codex_starter(responses, start_worker, monkeypatch)(
        sandbox=sandbox, policy_file=mcp_policy(tmp_path)
    )
    tid = await open_task(client)
    status = await settle(store, tid)
    logs = await log_of(client, tid)
    messages = [e["message"] for e in logs]
    assert status is TaskStatus.PENDING_APPROVAL, messages
    first, searched, looked_up, *_ = responses.requests
    # Offered: the search, not the server's tools; the search's answer holds them.
    offered = [t.get("name", t["type"]) for t in first["body"]["tools"]]
    assert "tool_search" in offered and "lookup" not in offered, offered
    assert responses.searched_tools(searched) == {glossary: ["lookup", "where"]}
    # The server's answer (with the policy's variable) came back to the model.
    assert f"found currency env={SECRET}" in outputs(looked_up)["lookup"]
    answered = outputs(responses.requests[-1])
    seen = "True" if sandbox == "none" else "False"
    assert f"exists={seen}" in answered["where"], answered
    # The calls show like Claude Code's, the secret redacted.
    assert entry(logs, "[stdout] mcp__glossary__lookup: ")["kind"] == "tool_use"
    result = entry(logs, "[stdout] tool result: mcp__glossary__lookup")
    assert result["kind"] == "tool_result"
    assert result["message"].endswith("found currency env=[REDACTED:secret]"), messages
    assert f"[stdout] tool result: mcp__glossary__where: exists={seen}" in messages, messages
    assert SECRET not in json.dumps(logs)
    assert (await store.tasks.get(tid)).plan == CODEX_PLAN


@pytest.mark.parametrize("servers", [True, False], ids=["policy-servers", "none"])
async def test_the_clones_own_mcp_json_is_not_loaded(
    servers: bool,
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    remotes: Path,
) -> None:
    """A repository's ``.mcp.json`` (anyone's text) starts nothing, whether or not the policy
    gives servers of its own (without ``--strict-mcp-config`` the CLI ran its command)."""
    marker = tmp_path / "planted-ran"
    planted = {"mcpServers": {"planted": {"command": "touch", "args": [str(marker)]}}}
    seed = tmp_path / "seed-mcp"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "clone", "-q", str(remotes / f"{REPO}.git"), str(seed)], check=True)
    (seed / ".mcp.json").write_text(json.dumps(planted))
    subprocess.run([*git, "-C", str(seed), "add", ".mcp.json"], check=True)
    subprocess.run([*git, "-C", str(seed), "commit", "-qm", "mcp"], check=True)
    subprocess.run(["git", "-C", str(seed), "push", "-q", "origin", "HEAD"], check=True)
    monkeypatch.setenv(SECRET_NAME, SECRET)
    with MessagesStub([Turn(text="PLAN: nothing to add.")]) as stub:
        use_stub(monkeypatch, stub, tmp_path)
        start_worker(
            agent="claude",
            claude_bin=claude_bin(),
            planning_timeout=120,
            policy_file=mcp_policy(tmp_path) if servers else None,
        )
        _, final = await plan_from_sentry(client, store)
    assert final is TaskStatus.PENDING_APPROVAL
    offered = {tool["name"] for tool in stub.requests[0]["body"].get("tools", [])}
    assert ("mcp__glossary__lookup" in offered) is servers
    assert not [name for name in offered if name.startswith("mcp__planted")]
    assert not marker.exists()

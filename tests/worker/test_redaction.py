"""Through the worker: an agent printing secrets leaves none in logs, search, plan or progress."""

from __future__ import annotations

import base64
import json
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from hookagent.models import NewTask, TaskStatus
from hookagent.secret_values import build_redactor
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.publish import Publisher
from hookagent.worker.workspace import Workspaces
from tests.conftest import RunWorker
from tests.helpers import FAKE_AGENT, FIXTURES, fake_agent, wait_status

# A configured value (no known shape: only configuration can catch it) and a shaped token.
CONFIGURED = "hkcfg-" + "Zx9Qw7Lm3Np5Rt8Vb2Kd"
SHAPED = "ghp_" + "0123456789FakeTokenForTestsOnly01234"
PEM_BODY = "MIIEowIBAAKCAQEAfakefakefake"  # the start of the fake agent's key body
SECRETS = (CONFIGURED, SHAPED, CONFIGURED[6:18], SHAPED[4:20], PEM_BODY)


async def run_task(client: httpx.AsyncClient, store: Store, **params: str) -> str:
    """Submit a Sentry alert and wait for its plan."""
    payload = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())
    payload["data"]["event"]["issue_id"] = uuid.uuid4().hex
    response = await client.post("/webhooks/sentry", json=payload, params=params)
    assert response.status_code == 202, response.text
    tid: str = response.json()["task_id"]
    done = await wait_status(store, tid, {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED})
    assert done is TaskStatus.PENDING_APPROVAL
    return tid


async def assert_nothing_secret(
    client: httpx.AsyncClient, tid: str, secrets: tuple[str, ...] = SECRETS
) -> list[dict[str, Any]]:
    """No secret in the log (messages and raw events), search, task or progress; the log."""
    entries: list[dict[str, Any]] = (
        await client.get(f"/tasks/{tid}/logs", params={"limit": -1})
    ).json()["logs"]
    task = (await client.get(f"/tasks/{tid}")).json()
    progress = (await client.get(f"/tasks/{tid}/progress")).json()
    stored = json.dumps([entries, task, progress])
    assert [s for s in secrets if s in stored] == []
    for fragment in secrets:
        found = (await client.get("/search", params={"q": fragment})).json()
        assert found["count"] == 0, found
    return entries


async def test_text_agent_secrets_are_redacted_everywhere(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker(
        agent_command=fake_agent("leak", CONFIGURED, SHAPED), github_token=SecretStr(CONFIGURED)
    )
    tid = await run_task(client, store)
    messages = [e["message"] for e in await assert_nothing_secret(client, tid)]
    assert "[stdout] using credential [REDACTED:secret] now" in messages
    assert "[stdout] using credential [REDACTED:github_token] now" in messages
    url = "https://x-access-token:[REDACTED:url_credentials]@github.com/acme/api.git"
    assert f"[stderr] fatal: {url}" in messages
    # The PEM block printed over four lines is one marker; the JSON line with it stays JSON.
    assert "[stdout] [REDACTED:private_key]" in messages
    event = json.loads(next(m for m in messages if "tool_result" in m).removeprefix("[stdout] "))
    assert event["content"] == "[REDACTED:private_key]\n"
    assert event["token"] == "[REDACTED:secret]"
    running = next(m for m in messages if m.startswith("[system] running "))
    assert running.endswith(" leak [REDACTED:secret] [REDACTED:github_token]")
    # The same lines were indexed: their ordinary words find them.
    found = (await client.get("/search", params={"q": "using credential"})).json()
    assert {hit["task_id"] for hit in found["hits"]} == {tid}
    task = (await client.get(f"/tasks/{tid}")).json()
    assert "PLAN: rotate [REDACTED:secret] and [REDACTED:github_token]" in task["plan"]


async def test_json_agent_events_plan_and_progress_are_redacted(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    fake_claude = tmp_path / "claude"
    argv = shlex.join([sys.executable, str(FAKE_AGENT), "leak-claude", CONFIGURED, SHAPED])
    fake_claude.write_text(f"#!/bin/sh\nexec {argv}\n")
    fake_claude.chmod(0o755)
    start_worker(claude_bin=str(fake_claude), github_token=SecretStr(CONFIGURED))
    tid = await run_task(client, store, agent="claude")
    entries = await assert_nothing_secret(client, tid)
    raws = [e["raw"] for e in entries if isinstance(e["raw"], dict)]
    result = next(r for r in raws if r["type"] == "user")["message"]["content"][0]["content"]
    assert result == "GITHUB_TOKEN=[REDACTED:github_token]\n[REDACTED:private_key]\n"
    task = (await client.get(f"/tasks/{tid}")).json()
    assert task["plan"] == "Rotate [REDACTED:secret] and [REDACTED:github_token]"
    progress = (await client.get(f"/tasks/{tid}/progress")).json()["progress"]
    assert progress["files_touched"] == ["/srv/[REDACTED:secret]/.env"]


async def test_pull_request_body_is_redacted(store: Store, settings: Settings) -> None:
    """A plan from before redaction (or edited by hand) does not reach GitHub as it is."""
    own = settings.model_copy(update={"github_token": SecretStr(CONFIGURED)})
    publisher = Publisher(
        store=store,
        settings=own,
        workspaces=Workspaces.from_settings(own),
        redactor=build_redactor(own),
    )
    new = NewTask(source="sentry", repository="acme/api", title="t", prompt="p")
    task = await store.tasks.create(new)
    plan = f"1. rotate {CONFIGURED}\n2. revoke {SHAPED}\n"
    body = publisher.body(task.model_copy(update={"plan": plan, "approver": "lee"}))
    assert "1. rotate [REDACTED:secret]\n2. revoke [REDACTED:github_token]\n" in body
    assert CONFIGURED not in body and SHAPED not in body and "Approved by lee." in body


# API tokens: the setting was redacted as one string, so a token printed alone went through,
# and a viewer could find an operator's token with /search; a token file's, not at all.
VIEWER_TOKEN = "hkview-" + "Qm3Zr8Lx5Np2Wt7Vb"
OPERATOR_TOKEN = "hkops-" + "Tz4Kd9Hs6Jq1Xc8Fg"
FILE_TOKEN = "hkfile-" + "Pw2Ye7Mn4Bv9Lc3Sd"


def token_leaks(*tokens: str) -> tuple[str, ...]:
    """Each token alone, in base64 inside a blob (``base64 .env``), URL-safe, and in hex."""
    leaks: list[str] = []
    for token in tokens:
        blob = f"A=1\nHOOKAGENT_TOKEN={token}\n".encode()
        leaks += [
            token,
            base64.b64encode(blob).decode(),
            base64.urlsafe_b64encode(token.encode()).decode().rstrip("="),
            token.encode().hex(),
        ]
    return tuple(leaks)


@pytest.mark.parametrize("source", ["env", "file"])
async def test_each_api_token_printed_alone_is_redacted_and_not_searchable(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path, source: str
) -> None:
    if source == "env":
        leaks = token_leaks(VIEWER_TOKEN, OPERATOR_TOKEN)
        tokens: dict[str, object] = {
            "api_tokens": SecretStr(f"viewer:{VIEWER_TOKEN},operator:ops:{OPERATOR_TOKEN}")
        }
    else:
        leaks = token_leaks(FILE_TOKEN)
        path = tmp_path / "tokens"
        path.write_text(f"# the team\nadmin:root:{FILE_TOKEN}\n")
        path.chmod(0o600)
        tokens = {"api_tokens_file": path}
    start_worker(agent_command=fake_agent("leak", *leaks), **tokens)
    tid = await run_task(client, store)
    messages = [e["message"] for e in await assert_nothing_secret(client, tid, leaks)]
    assert "[stdout] using credential [REDACTED:secret] now" in messages

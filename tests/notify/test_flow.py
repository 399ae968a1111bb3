"""The whole flow with every channel on: Slack app, GitHub reply, signed outbound webhooks.

A labelled GitHub issue starts a task; the fake agent plans; Slack gets one parent message
and the plan with buttons in its thread; a signed Approve click runs the execution; the
parent is edited in place to the end, the thread gets log snippets and the PR, the issue
gets one comment edited as the task moves, and the receiver gets every event, signed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.github_stub import GitHubStub
from tests.helpers import FIXTURES, app_client, fake_agent, wait_status
from tests.notify.conftest import SIGNING_SECRET, StartNotifier, slack_headers
from tests.notify_stubs import RecordingStub, SlackStub

NOTIFY_SECRET = "whsec-0123456789abcdef"
PUBLIC = "https://hookagent.example"
PARENT_TS, PLAN_TS = "1764040001.000001", "1764040001.000002"  # the stub's first two ts


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        yield stub


@pytest.fixture
def receiver() -> Iterator[RecordingStub]:
    with RecordingStub() as stub:
        yield stub


def everything_on(slack: SlackStub, github: GitHubStub, receiver: RecordingStub) -> dict[str, Any]:
    """Settings overrides turning every channel on, pointed at the stubs."""
    return {
        "agent_command": fake_agent("auto", "ticks", "10", "0.25"),
        "slack_bot_token": SecretStr(SlackStub.TOKEN),
        "slack_channel": "#ai-agents",
        "slack_api_url": slack.api_url,
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_approvers": "U024BE7LH",
        "slack_snippet_interval": 0.5,
        "github_token": SecretStr("ghp_" + "A1b2" * 9),
        "github_api_url": github.url,
        "notify_urls": f"{receiver.url}/events",
        "notify_secret": SecretStr(NOTIFY_SECRET),
        "notify_lease": 2.0,
        "public_url": PUBLIC,
    }


def click(action: str, task_id: str, *, user: dict[str, str] | None = None) -> bytes:
    """The form body Slack posts for a new click on one of the task's buttons (by ``user``)."""
    payload = json.loads((FIXTURES / "slack-block-actions.json").read_text())
    stamp = f"{time.time():.6f}"  # Slack's id of the click: one per click
    payload["actions"][0].update(action_id=action, value=task_id, action_ts=stamp)
    payload["user"] = user or payload["user"]
    return urlencode({"payload": json.dumps(payload)}).encode()


def has_buttons(body: dict[str, Any]) -> bool:
    return any(block["type"] == "actions" for block in body.get("blocks", []))


async def test_slack_github_and_webhooks_follow_the_task(
    settings: Settings,
    redis: Redis,
    store: Store,
    start_worker: RunWorker,
    start_notifier: StartNotifier,
    slack: SlackStub,
    github: GitHubStub,
    receiver: RecordingStub,
) -> None:
    overrides = everything_on(slack, github, receiver)
    own = settings.model_copy(update=overrides)
    start_notifier(own)
    start_worker(**overrides)
    async with app_client(own, redis) as http:
        issue = (FIXTURES / "github-issues-labeled.json").read_bytes()
        headers = {"content-type": "application/json", "x-github-event": "issues"}
        created = await http.post("/webhooks/github", content=issue, headers=headers)
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]

        await asyncio.to_thread(
            slack.wait_for, lambda: any(has_buttons(b) for b in slack.calls("chat.postMessage"))
        )
        parent, plan = slack.calls("chat.postMessage")[:2]
        assert "thread_ts" not in parent and parent["channel"] == "#ai-agents"
        assert "Export to CSV drops the last row" in json.dumps(parent["blocks"])
        assert "acme/payments-api" in json.dumps(parent["blocks"])
        assert plan["thread_ts"] == PARENT_TS and plan["channel"] == SlackStub.CHANNEL_ID
        assert "guard the division" in json.dumps(plan["blocks"])
        assert f"{PUBLIC}/ui/tasks/{task_id}" in json.dumps(plan["blocks"])
        buttons = next(b for b in plan["blocks"] if b["type"] == "actions")["elements"]
        assert [(b["action_id"], b["value"]) for b in buttons] == [
            ("approve", task_id), ("reject", task_id), ("revise", task_id),
        ]  # fmt: skip
        auth = slack.accepted("/api/chat.postMessage")[0]["headers"]["authorization"]
        assert auth == f"Bearer {SlackStub.TOKEN}"

        body = click("approve", task_id)
        answer = await http.post(
            "/webhooks/slack/interactions", content=body, headers=slack_headers(body)
        )
        assert answer.status_code == 200 and answer.content == b""
        ended = await wait_status(store, task_id, {TaskStatus.COMPLETED, TaskStatus.FAILED})
        assert ended is TaskStatus.COMPLETED

    def thread_texts() -> str:
        return "\n".join(t for t in slack.texts("chat.postMessage") if '"thread_ts"' in t)

    await asyncio.to_thread(slack.wait_for, lambda: "*Completed*" in thread_texts())
    updates = slack.calls("chat.update")
    parent_updates = [u for u in updates if u["ts"] == PARENT_TS]
    # One parent message; everything else went into its thread.
    assert [c.get("thread_ts") for c in slack.calls("chat.postMessage")][1:] == [PARENT_TS] * (
        len(slack.calls("chat.postMessage")) - 1
    )
    final = json.dumps([u for u in slack.calls("chat.update") if u["ts"] == PARENT_TS][-1])
    assert "Completed" in final and "approved by lee (slack U024BE7LH)" in final
    assert "pull/41" in final
    assert len(parent_updates) >= 3  # discovering, pending_approval, approved, executing, …
    plan_updates = [u for u in updates if u["ts"] == PLAN_TS]
    assert plan_updates and not has_buttons(plan_updates[-1])
    assert "approved by lee" in json.dumps(plan_updates[-1])
    assert "tick" in thread_texts()  # a log snippet while executing
    assert "Cost:" in thread_texts() and "Duration:" in thread_texts()

    # The issue: one comment, edited as the task moved.
    await asyncio.to_thread(
        github.wait_for, lambda: any("pull/41" in b for b in github.comments.values())
    )
    writes = github.comment_requests()
    assert [w["method"] for w in writes][:1] == ["POST"] and len(github.comments) == 1
    assert writes[0]["path"] == "/repos/acme/payments-api/issues/412/comments"
    assert all(w["path"] == "/repos/acme/payments-api/issues/comments/9000" for w in writes[1:])
    bodies = [w["body"]["body"] for w in writes]
    assert any("@hookagent approve" in b for b in bodies)
    assert f"<!-- hookagent:{task_id} -->" in bodies[-1] and "Completed" in bodies[-1]

    # hookagent's own comment comes back as a webhook: it is not a command.
    async with app_client(own, redis) as http:
        comment = json.loads((FIXTURES / "github-issue-comment.json").read_text())
        comment["comment"]["body"] = github.comments[9000]
        headers = {"content-type": "application/json", "x-github-event": "issue_comment"}
        echoed = await http.post("/webhooks/github", json=comment, headers=headers)
        assert echoed.json()["status"] == "ignored"

    # The receiver: every public event once, in order, signed.
    def completed_received() -> bool:
        return any(
            r["headers"]["x-hookagent-event"] == "task.completed" for r in receiver.accepted()
        )

    await asyncio.to_thread(receiver.wait_for, completed_received)
    events = [r["headers"]["x-hookagent-event"] for r in receiver.accepted()]
    assert events == [
        "task.created", "task.plan_ready", "task.approved", "task.executing", "task.completed",
    ]  # fmt: skip
    for request in receiver.accepted():
        digest = hmac.new(NOTIFY_SECRET.encode(), request["raw"], hashlib.sha256).hexdigest()
        expected = f"sha256={digest}"
        assert hmac.compare_digest(request["headers"]["x-hookagent-signature"], expected)
        assert request["body"]["event"] == request["headers"]["x-hookagent-event"]
        assert request["body"]["task_id"] == task_id
    ids = [r["headers"]["x-hookagent-delivery"] for r in receiver.accepted()]
    assert len(set(ids)) == len(ids)
    assert receiver.accepted()[-1]["body"]["task"]["pr_url"].endswith("/pull/41")

"""Linear end to end: a labelled issue is planned, approved from a comment and run.

The signed Issue webhook starts a task; the fake agent plans; the issue gets one comment
through Linear's GraphQL API (``commentCreate``), rewritten in place (``commentUpdate``) as
the task moves; an approver's ``@hookagent approve`` comment runs the execution.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.helpers import FIXTURES, REPO, app_client, fake_agent, just_written, wait_status
from tests.linear_stub import LinearStub
from tests.notify.conftest import StartNotifier

SECRET = "lin_wh_5d1e0c9b8a7f6e5d4c3b2a19"
PUBLIC = "https://hookagent.example"


@pytest.fixture
def linear() -> Iterator[LinearStub]:
    with LinearStub() as stub:
        yield stub


def payload(name: str) -> dict[str, Any]:
    data = just_written(json.loads((FIXTURES / name).read_text()))  # as sent when written
    data["webhookTimestamp"] = int(time.time() * 1000)
    return data


async def deliver(http: httpx.AsyncClient, body: dict[str, Any], delivery: str) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {
        "content-type": "application/json; charset=utf-8",
        "linear-delivery": delivery,
        "linear-event": body["type"],
        "linear-signature": hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest(),
    }
    return await http.post("/webhooks/linear", content=raw, headers=headers)


async def test_labelled_issue_planned_approved_and_run_with_one_comment(
    settings: Settings,
    redis: Redis,
    store: Store,
    start_worker: RunWorker,
    start_notifier: StartNotifier,
    linear: LinearStub,
) -> None:
    overrides: dict[str, Any] = {
        "agent_command": fake_agent("auto"),
        "linear_api_url": linear.api_url,
        "linear_api_key": SecretStr(LinearStub.KEY),
        "linear_webhook_secret": SecretStr(SECRET),
        "linear_approvers": "lee@example.com",
        "linear_projects": f"Payments={REPO}",
        "public_url": PUBLIC,
    }
    own = settings.model_copy(update=overrides)
    start_notifier(own)
    start_worker(**overrides)
    issue = payload("linear-issue-create.json")
    issue_id = issue["data"]["id"]
    async with app_client(own, redis) as http:
        created = await deliver(http, issue, "d-issue")
        assert created.status_code == 202, created.text
        tid = created.json()["task_id"]
        assert await wait_status(store, tid, {TaskStatus.PENDING_APPROVAL}) is not None
        # The plan is on the issue before anyone approves it.
        await asyncio.to_thread(
            linear.wait_for,
            lambda: any("@hookagent approve" in c["body"] for c in linear.comments.values()),
        )
        approved = await deliver(http, payload("linear-comment-approve.json"), "d-approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        ended = await wait_status(store, tid, {TaskStatus.COMPLETED, TaskStatus.FAILED})
        assert ended is TaskStatus.COMPLETED, (await store.tasks.get(tid)).error

    await asyncio.to_thread(
        linear.wait_for, lambda: any("Completed" in c["body"] for c in linear.comments.values())
    )
    # One comment, created once on the issue, then edited in place.
    [comment_id] = linear.comments
    writes = linear.writes()
    assert writes[0] == {
        "op": "commentCreate",
        "variables": {"issueId": issue_id, "body": writes[0]["variables"]["body"]},
    }
    assert {(w["op"], w["variables"]["id"]) for w in writes[1:]} == {("commentUpdate", comment_id)}
    assert len(writes) >= 3  # created, plan ready, …, completed
    assert all(r["headers"]["Authorization"] == LinearStub.KEY for r in linear.requests)
    final = linear.comments[comment_id]["body"]
    assert final.endswith(f"_hookagent:{tid}_") and "Completed" in final
    assert f"({PUBLIC}/ui/tasks/{tid})" in final
    assert "approved by Lee Lead (linear)" in final
    assert any("HOOKAGENT_LINEAR_APPROVERS" in w["variables"]["body"] for w in writes)

    # hookagent's own comment comes back as a Comment webhook: it is not a command.
    async with app_client(own, redis) as http:
        echo = payload("linear-comment-approve.json")
        echo["data"]["body"] = final
        echoed = await deliver(http, echo, "d-echo")
        assert echoed.json()["status"] == "ignored" and "marker" in echoed.json()["reason"]

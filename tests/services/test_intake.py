"""Deliveries end to end: dedupe, GitHub issues, and commands from comments and transitions."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import NewTask, TaskStatus
from hookagent.services.intake import Created, Duplicate, Intake
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import FIXTURES, app_client, just_written, move_to

GITHUB_ISSUE = json.loads(FIXTURES.joinpath("github-issues-labeled.json").read_text())
GITHUB_COMMENT = json.loads(FIXTURES.joinpath("github-issue-comment.json").read_text())
JIRA_CREATED = json.loads(FIXTURES.joinpath("jira-issue-created.json").read_text())
JIRA_COMMENT = json.loads(FIXTURES.joinpath("jira-comment-created.json").read_text())
JIRA_APPROVED = json.loads(FIXTURES.joinpath("jira-issue-updated.json").read_text())
ALERT = json.loads(FIXTURES.joinpath("sentry-event-alert.json").read_text())
SECRET = "gh-webhook-s3cret"
JIRA_SECRET = "jira-webhook-s3cret"
APPROVERS = {
    "github_approvers": "lee-lead",
    "jira_approvers": "5b10ac8d82e05b22cc7d4ef6, lee.dc",
}
JSON = {"content-type": "application/json"}


@pytest.fixture
async def http(settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    own = settings.model_copy(
        update={
            "github_webhook_secret": SecretStr(SECRET),
            "jira_webhook_secret": SecretStr(JIRA_SECRET),
            **APPROVERS,
        }
    )
    async with app_client(own, redis) as client:
        yield client


@pytest.fixture
async def unsigned_http(settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """Approvers listed but no webhook secret: deliveries arrive unsigned."""
    async with app_client(settings.model_copy(update=APPROVERS), redis) as client:
        yield client


async def github(
    http: httpx.AsyncClient,
    event: str,
    payload: dict[str, Any],
    delivery: str,
    *,
    sign: bool = True,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery,
    }
    if sign:
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers["x-hub-signature-256"] = "sha256=" + signature
    return await http.post("/webhooks/github", content=body, headers=headers)


async def jira(
    http: httpx.AsyncClient, payload: dict[str, Any], delivery: str, *, sign: bool = True
) -> httpx.Response:
    body = json.dumps(just_written(payload)).encode()  # a comment or transition made now
    headers = {"content-type": "application/json", "x-atlassian-webhook-identifier": delivery}
    if sign:
        signature = hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers["x-hub-signature"] = "sha256=" + signature
    return await http.post("/webhooks/jira", content=body, headers=headers)


async def test_github_issue_and_redelivery(http: httpx.AsyncClient, store: Store) -> None:
    first = await github(http, "issues", GITHUB_ISSUE, "d-1")
    assert first.status_code == 202, first.text
    again = await github(http, "issues", GITHUB_ISSUE, "d-1")
    assert again.status_code == 200
    assert again.json()["task_id"] == first.json()["task_id"] and again.json()["duplicate"] is True
    assert len(await store.tasks.list(status=None, limit=10)) == 1


async def test_github_signature_is_checked(http: httpx.AsyncClient) -> None:
    headers = {
        "content-type": "application/json",
        "x-github-event": "issues",
        "x-hub-signature-256": "sha256=00",
    }
    response = await http.post(
        "/webhooks/github", content=json.dumps(GITHUB_ISSUE), headers=headers
    )
    assert response.status_code == 401


async def test_same_incident_while_open_is_one_task(http: httpx.AsyncClient, store: Store) -> None:
    responses = await asyncio.gather(
        *(http.post("/webhooks/sentry", json=ALERT) for _ in range(20))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 19 + [202]
    assert len({r.json()["task_id"] for r in responses}) == 1
    tid = responses[0].json()["task_id"]
    await move_to(store, tid, TaskStatus.FAILED, reason="done with it")
    fresh = await http.post("/webhooks/sentry", json={**ALERT, "action": "triggered"})
    assert fresh.status_code == 200, "the same delivery (issue id + action) stays a duplicate"
    other_action = await http.post("/webhooks/sentry", json={**ALERT, "action": "re-triggered"})
    assert other_action.status_code == 202 and other_action.json()["task_id"] != tid


async def pending_github_task(
    http: httpx.AsyncClient, store: Store, number: int = 413, *, sign: bool = True
) -> str:
    issue = json.loads(json.dumps(GITHUB_ISSUE))
    issue["issue"]["number"] = number
    created = await github(http, "issues", issue, f"issue-{number}", sign=sign)
    tid: str = created.json()["task_id"]
    await move_to(store, tid, TaskStatus.PENDING_APPROVAL, fields={"plan": "the plan"})
    return tid


async def test_approver_comment_approves(http: httpx.AsyncClient, store: Store) -> None:
    tid = await pending_github_task(http, store)
    response = await github(http, "issue_comment", GITHUB_COMMENT, "c-1")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"
    task = await store.tasks.get(tid)
    assert (task.status, task.approval_comment) == (TaskStatus.APPROVED, "looks right, go ahead")
    assert (await github(http, "issue_comment", GITHUB_COMMENT, "c-1")).json()[
        "status"
    ] == "duplicate"


async def test_non_approver_is_refused_and_it_is_logged(
    http: httpx.AsyncClient, store: Store
) -> None:
    tid = await pending_github_task(http, store)
    comment = json.loads(json.dumps(GITHUB_COMMENT))
    comment["comment"]["user"]["login"] = "mallory"
    response = await github(http, "issue_comment", comment, "c-2")
    assert response.status_code == 403 and response.json()["error"] == "not_an_approver"
    assert (await store.tasks.get(tid)).status is TaskStatus.PENDING_APPROVAL
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    assert entries[-1].message == (
        "[system] approve from github by mallory refused: not in HOOKAGENT_GITHUB_APPROVERS"
    )


async def test_command_on_a_finished_task_is_409_and_logged(
    http: httpx.AsyncClient, store: Store
) -> None:
    tid = await pending_github_task(http, store)
    await move_to(store, tid, TaskStatus.REJECTED)
    response = await github(http, "issue_comment", GITHUB_COMMENT, "c-3")
    assert response.status_code == 409
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    assert entries[-1].message.endswith(f"refused: task {tid} is rejected")


async def test_command_for_an_unknown_object_is_404(http: httpx.AsyncClient) -> None:
    response = await github(http, "issue_comment", GITHUB_COMMENT, "c-4")
    assert response.status_code == 404
    assert response.json()["detail"] == "no task for github acme/payments-api#413"


async def test_unknown_command_word_is_explained(http: httpx.AsyncClient) -> None:
    comment = json.loads(json.dumps(GITHUB_COMMENT))
    comment["comment"]["body"] = "@hookagent deploy"
    del comment["issue"]["pull_request"]  # on a pull request free text is review feedback
    response = await github(http, "issue_comment", comment, "c-5")
    assert response.status_code == 200 and "unknown command 'deploy'" in response.json()["reason"]


async def test_jira_comment_revises(http: httpx.AsyncClient, store: Store) -> None:
    created = await jira(http, JIRA_CREATED, "j-0")
    tid = created.json()["task_id"]
    await move_to(store, tid, TaskStatus.PENDING_APPROVAL, fields={"plan": "v1"})
    response = await jira(http, JIRA_COMMENT, "j-1")
    assert response.status_code == 200, response.text
    task = await store.tasks.get(tid)
    assert (task.status, task.feedback) == (
        TaskStatus.QUEUED,
        "also cover coupons with a zero rate",
    )
    asked = {
        **JIRA_COMMENT,
        "comment": {**JIRA_COMMENT["comment"], "id": "20078", "body": "@hookagent status"},
    }
    status = await jira(http, asked, "j-2")
    assert status.json() == {"task_id": tid, "status": "queued", "plan": "v1"}


async def test_an_intake_failure_leaves_no_mark_and_the_retry_creates_the_task(
    store: Store, settings: Settings
) -> None:
    """Nothing of a delivery is kept unless its task is: the sender's retry is not a duplicate."""
    intake = Intake(store, settings)
    # A value Redis cannot take (a lone surrogate cannot be encoded): the write fails late,
    # after everything intake checked, where the delivery mark used to be set already.
    broken = NewTask.model_construct(
        source="sentry", repository="acme/payments-api", title="bad \ud800", prompt="p",
        external_id="incident-1", url=None, agent=None,
    )  # fmt: skip
    with pytest.raises(UnicodeEncodeError):
        await intake.new_task(broken, delivery="incident-1:created", signed=True)
    assert await store.refs.seen("sentry", delivery="incident-1:created", ref="incident-1") == (
        None,
        None,
    )
    assert await store.tasks.list(status=None, limit=10) == []
    retry = NewTask(source="sentry", repository="acme/payments-api", title="bad", prompt="p",
                    external_id="incident-1")  # fmt: skip
    outcome = await intake.new_task(retry, delivery="incident-1:created", signed=True)
    assert isinstance(outcome, Created)
    again = await intake.new_task(retry, delivery="incident-1:created", signed=True)
    assert isinstance(again, Duplicate) and again.task_id == outcome.task.task_id


async def test_a_stale_mark_does_not_swallow_a_delivery(store: Store, settings: Settings) -> None:
    """A delivery mark whose task is gone (expired, or an old bug) is replaced, not obeyed."""
    await store.refs.mark_delivery("sentry", "incident-2:created", "task-1-dead")
    new = NewTask(source="sentry", repository="acme/payments-api", title="t", prompt="p",
                  external_id="incident-2")  # fmt: skip
    outcome = await Intake(store, settings).new_task(
        new, delivery="incident-2:created", signed=True
    )
    assert isinstance(outcome, Created)
    seen = await store.refs.seen("sentry", delivery="incident-2:created", ref="incident-2")
    assert seen == (outcome.task.task_id, outcome.task.task_id)


async def test_a_payload_with_a_lone_surrogate_is_accepted_once(
    http: httpx.AsyncClient, store: Store
) -> None:
    """Valid JSON holding ``\\ud800`` (the issue's reproduction): one task, its retry a dup."""
    payload = json.loads(json.dumps(ALERT))
    payload["data"]["event"]["title"] = "bad SURROGATE surrogate"
    payload["data"]["event"]["issue_id"] = "surrogate-1"
    # json.dumps would refuse to write a lone surrogate; the escape is valid JSON all the same.
    body = json.dumps(payload).replace("SURROGATE", "\\ud800")
    assert "\\ud800" in body
    first = await http.post("/webhooks/sentry", content=body, headers=JSON)
    assert first.status_code == 202, first.text
    retry = await http.post("/webhooks/sentry", content=body, headers=JSON)
    assert retry.status_code == 200 and retry.json()["task_id"] == first.json()["task_id"]
    task = (await http.get(f"/tasks/{first.json()['task_id']}")).json()
    assert "\ufffd" in task["title"]


async def unchanged(store: Store, tid: str) -> tuple[Any, ...]:
    """Everything a command could change about a task: hash, history, log length."""
    task = await store.tasks.get(tid)
    _, total = await store.logs.read(tid, offset=0, limit=-1)
    return task, await store.tasks.history(tid), total


async def test_unsigned_github_approve_is_401_and_changes_nothing(
    unsigned_http: httpx.AsyncClient, store: Store
) -> None:
    """An approver's login is only a claim in the payload: without a signature it is refused."""
    tid = await pending_github_task(unsigned_http, store, sign=False)
    before = await unchanged(store, tid)
    response = await github(unsigned_http, "issue_comment", GITHUB_COMMENT, "c-u1", sign=False)
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    assert response.json()["detail"].startswith(
        "commands need a signed delivery: set HOOKAGENT_GITHUB_WEBHOOK_SECRET"
    )
    assert await unchanged(store, tid) == before
    assert (await store.tasks.get(tid)).status is TaskStatus.PENDING_APPROVAL


async def test_unsigned_jira_transition_is_401_and_changes_nothing(
    unsigned_http: httpx.AsyncClient, store: Store
) -> None:
    tid = (await jira(unsigned_http, JIRA_CREATED, "j-u0", sign=False)).json()["task_id"]
    await move_to(store, tid, TaskStatus.PENDING_APPROVAL, fields={"plan": "the plan"})
    before = await unchanged(store, tid)
    response = await jira(unsigned_http, JIRA_APPROVED, "j-u1", sign=False)
    assert response.status_code == 401
    assert "HOOKAGENT_JIRA_WEBHOOK_SECRET" in response.json()["detail"]
    assert await unchanged(store, tid) == before


async def test_signed_jira_transition_approves(http: httpx.AsyncClient, store: Store) -> None:
    tid = (await jira(http, JIRA_CREATED, "j-s0")).json()["task_id"]
    await move_to(store, tid, TaskStatus.PENDING_APPROVAL, fields={"plan": "the plan"})
    response = await jira(http, JIRA_APPROVED, "j-s1")
    assert response.status_code == 200, response.text
    assert (await store.tasks.get(tid)).status is TaskStatus.APPROVED


def jira_comment(body: str, author: dict[str, str]) -> dict[str, Any]:
    """The fixture Jira comment with another ``body`` and ``author``."""
    return {**JIRA_COMMENT, "comment": {**JIRA_COMMENT["comment"], "body": body, "author": author}}


async def test_a_jira_display_name_like_an_approver_is_refused(
    http: httpx.AsyncClient, store: Store
) -> None:
    """The approver list names account ids: a display name set to one approves nothing."""
    tid = (await jira(http, JIRA_CREATED, "j-d0")).json()["task_id"]
    await move_to(store, tid, TaskStatus.PENDING_APPROVAL, fields={"plan": "the plan"})
    spoof = {"accountId": "557058:mallory", "displayName": "5b10ac8d82e05b22cc7d4ef6"}
    response = await jira(http, jira_comment("@hookagent approve", spoof), "j-d1")
    assert response.status_code == 403 and response.json()["error"] == "not_an_approver"
    assert (await store.tasks.get(tid)).status is TaskStatus.PENDING_APPROVAL
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    assert entries[-1].message == (
        "[system] approve from jira by 5b10ac8d82e05b22cc7d4ef6 refused: "
        "not in HOOKAGENT_JIRA_APPROVERS"
    )


async def test_a_jira_approver_by_account_id_approves(
    http: httpx.AsyncClient, store: Store
) -> None:
    tid = (await jira(http, JIRA_CREATED, "j-a0")).json()["task_id"]
    await move_to(store, tid, TaskStatus.PENDING_APPROVAL, fields={"plan": "the plan"})
    lee = {"accountId": "5b10ac8d82e05b22cc7d4ef6", "displayName": "Someone Else"}
    response = await jira(http, jira_comment("@hookagent approve go", lee), "j-a1")
    assert response.status_code == 200, response.text
    task = await store.tasks.get(tid)
    assert (task.status, task.approver) == (TaskStatus.APPROVED, "Someone Else (jira)")


async def test_a_jira_data_center_approver_by_username_approves(
    http: httpx.AsyncClient, store: Store
) -> None:
    """Data Center sends no account id: its unique username is what the list names."""
    tid = (await jira(http, JIRA_CREATED, "j-n0")).json()["task_id"]
    await move_to(store, tid, TaskStatus.PENDING_APPROVAL, fields={"plan": "the plan"})
    lee = {"name": "lee.dc", "key": "JIRAUSER10100", "displayName": "Lee Lead"}
    response = await jira(http, jira_comment("@hookagent approve", lee), "j-n1")
    assert response.status_code == 200, response.text
    assert (await store.tasks.get(tid)).status is TaskStatus.APPROVED


async def test_a_replayed_signed_delivery_is_a_no_op(http: httpx.AsyncClient, store: Store) -> None:
    """The same delivery id again (a replay, or the sender's retry) changes nothing."""
    tid = await pending_github_task(http, store)
    assert (await github(http, "issue_comment", GITHUB_COMMENT, "c-r1")).status_code == 200
    before = await unchanged(store, tid)
    replay = await github(http, "issue_comment", GITHUB_COMMENT, "c-r1")
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert await unchanged(store, tid) == before
    again = await github(http, "issues", GITHUB_ISSUE, "issue-413")
    assert again.status_code == 200 and again.json()["task_id"] == tid
    assert len(await store.tasks.list(status=None, limit=10)) == 1


async def test_required_signatures_refuse_an_unsigned_new_task(
    settings: Settings, redis: Redis, store: Store
) -> None:
    own = settings.model_copy(update={"require_signatures": True})
    async with app_client(own, redis) as http:
        response = await http.post("/webhooks/sentry", json=ALERT)
    assert response.status_code == 401 and response.json()["error"] == "bad_signature"
    assert "HOOKAGENT_SENTRY_CLIENT_SECRET" in response.json()["detail"]
    assert await store.tasks.list(status=None, limit=10) == []
    assert await store.refs.seen(
        "sentry", delivery=None, ref=ALERT["data"]["event"]["issue_id"]
    ) == (
        None,
        None,
    )


async def test_the_queue_cap_refuses_new_tasks_not_commands(
    settings: Settings, redis: Redis, store: Store
) -> None:
    own = settings.model_copy(
        update={"github_webhook_secret": SecretStr(SECRET), "max_queued": 1, **APPROVERS}
    )
    async with app_client(own, redis) as http:
        tid = await pending_github_task(http, store)  # pending approval: not queued
        first = await http.post("/webhooks/sentry", json=ALERT)
        assert first.status_code == 202, first.text
        other = {**ALERT, "data": {"event": {**ALERT["data"]["event"], "issue_id": "other-1"}}}
        full = await http.post("/webhooks/sentry", json=other)
        assert full.status_code == 503 and full.headers["retry-after"] == "30"
        assert full.json() == {
            "error": "queue_full",
            "detail": "1 tasks are queued (HOOKAGENT_MAX_QUEUED=1); retry later",
        }
        # Nothing was written: once the queue has room, the retry creates the task.
        assert await store.refs.seen("sentry", delivery="other-1:triggered", ref="other-1") == (
            None,
            None,
        )
        approved = await github(http, "issue_comment", GITHUB_COMMENT, "c-q1")
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        await move_to(store, first.json()["task_id"], TaskStatus.FAILED)
        retry = await http.post("/webhooks/sentry", json=other)
        assert retry.status_code == 202, retry.text
    assert (await store.tasks.get(tid)).status is TaskStatus.APPROVED

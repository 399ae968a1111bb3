"""Slack interactivity: signed, fresh, approvers only; Revise goes through a modal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import FIXTURES, REPO, app_client, move_to
from tests.notify.conftest import SIGNING_SECRET, slack_headers
from tests.notify.test_flow import click
from tests.notify_stubs import SlackStub

PATH = "/webhooks/slack/interactions"


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


@pytest.fixture
async def http(
    settings: Settings, redis: Redis, slack: SlackStub
) -> AsyncIterator[httpx.AsyncClient]:
    own = settings.model_copy(
        update={
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_approvers": "U024BE7LH",
            "slack_bot_token": SecretStr(SlackStub.TOKEN),
            "slack_api_url": slack.api_url,
        }
    )
    async with app_client(own, redis) as client:
        yield client


async def plan_waiting(store: Store) -> str:
    task = await store.tasks.create(
        NewTask(source="jira", repository=REPO, title="PAY-231: fix it", prompt="fix it")
    )
    await move_to(store, task.task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "PLAN: x"})
    return task.task_id


async def log_text(store: Store, task_id: str) -> str:
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return "\n".join(entry.message for entry in entries)


async def test_bad_signature_old_timestamp_and_non_approver_change_nothing(
    http: httpx.AsyncClient, store: Store
) -> None:
    task_id = await plan_waiting(store)
    body = click("approve", task_id)
    forged = slack_headers(body, secret="not-the-signing-secret")
    assert (await http.post(PATH, content=body, headers=forged)).status_code == 401
    stale = slack_headers(body, age=6 * 60)  # correctly signed, but replayed too late
    assert (await http.post(PATH, content=body, headers=stale)).status_code == 401
    unsigned = {"content-type": "application/x-www-form-urlencoded"}
    assert (await http.post(PATH, content=body, headers=unsigned)).status_code == 401
    before = await log_text(store, task_id)

    outsider = json.loads((FIXTURES / "slack-block-actions.json").read_text())
    outsider["user"] = {"id": "U0OUTSIDER", "username": "mallory"}
    outsider["actions"][0]["value"] = task_id
    body = urlencode({"payload": json.dumps(outsider)}).encode()
    answer = await http.post(PATH, content=body, headers=slack_headers(body))
    assert answer.status_code == 403, answer.text

    task = await store.tasks.get(task_id)
    assert (task.status, task.approver) == (TaskStatus.PENDING_APPROVAL, None)
    log = await log_text(store, task_id)
    assert log.startswith(before)
    assert "approve from slack by mallory (slack U0OUTSIDER) refused" in log[len(before) :]
    assert "HOOKAGENT_SLACK_APPROVERS" in log[len(before) :]


async def test_signed_click_by_an_approver_approves(http: httpx.AsyncClient, store: Store) -> None:
    task_id = await plan_waiting(store)
    body = click("approve", task_id)
    answer = await http.post(PATH, content=body, headers=slack_headers(body))
    assert answer.status_code == 200
    task = await store.tasks.get(task_id)
    assert (task.status, task.approver) == (TaskStatus.APPROVED, "lee (slack U024BE7LH)")
    second = click("approve", task_id)
    again = await http.post(PATH, content=second, headers=slack_headers(second))
    assert again.status_code == 409  # a second click changes nothing


async def test_revise_opens_a_modal_and_its_submission_plans_again(
    http: httpx.AsyncClient, store: Store, slack: SlackStub
) -> None:
    task_id = await plan_waiting(store)
    body = click("revise", task_id)
    answer = await http.post(PATH, content=body, headers=slack_headers(body))
    assert answer.status_code == 200
    [opened] = slack.calls("views.open")
    assert opened["trigger_id"] == "13345224609.738474920.8088930838d88f008e0"
    assert opened["view"]["private_metadata"] == task_id
    assert (await store.tasks.get(task_id)).status is TaskStatus.PENDING_APPROVAL

    submission = {
        "type": "view_submission",
        "user": {"id": "U024BE7LH", "username": "lee"},
        "view": {
            "id": "V0MODAL",
            "callback_id": opened["view"]["callback_id"],
            "private_metadata": task_id,
            "state": {"values": {"feedback": {"feedback": {"type": "plain_text_input",
                                                            "value": "also cover refunds"}}}},
        },
    }  # fmt: skip
    body = urlencode({"payload": json.dumps(submission)}).encode()
    answer = await asyncio.wait_for(http.post(PATH, content=body, headers=slack_headers(body)), 3)
    assert answer.status_code == 200 and answer.content == b""
    task = await store.tasks.get(task_id)
    assert (task.status, task.feedback) == (TaskStatus.QUEUED, "also cover refunds")


def click_as(user_id: str, username: str, task_id: str) -> bytes:
    """A new click on Approve by the Slack user ``user_id``, whose name is now ``username``."""
    return click("approve", task_id, user={"id": user_id, "username": username})


async def test_one_slack_user_under_two_names_is_one_vote(
    settings: Settings, redis: Redis, store: Store, slack: SlackStub, tmp_path: Path
) -> None:
    """The attack: renaming oneself between two clicks cast two votes on ``approvals = 2``."""
    policy = tmp_path / "hookagent.toml"
    policy.write_text(f'[repo."{REPO}"]\napprovals = 2\n')
    own = settings.model_copy(
        update={
            "policy_file": policy,
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_approvers": "U024BE7LH, U0KIM",
        }
    )
    task_id = await plan_waiting(store)
    async with app_client(own, redis) as http:
        for name in ("lee", "Lee the Second"):
            body = click_as("U024BE7LH", name, task_id)
            assert (
                await http.post(PATH, content=body, headers=slack_headers(body))
            ).status_code == 200
        assert (await store.tasks.get(task_id)).status is TaskStatus.PENDING_APPROVAL
        assert "approval already counted by Lee the Second" in await log_text(store, task_id)
        body = click_as("U0KIM", "kim", task_id)
        assert (await http.post(PATH, content=body, headers=slack_headers(body))).status_code == 200
    assert (await store.tasks.get(task_id)).status is TaskStatus.APPROVED
    voters = sorted({b.split("\t")[0] for b in await store.tasks.approvers(task_id)})
    assert voters == ["slack:U024BE7LH", "slack:U0KIM"]


async def test_a_replayed_click_is_a_duplicate(http: httpx.AsyncClient, store: Store) -> None:
    """Slack's ``action_ts`` names the click: the same one again, freshly signed, is a replay."""
    task_id = await plan_waiting(store)
    body = click("reject", task_id)
    assert (await http.post(PATH, content=body, headers=slack_headers(body))).status_code == 200
    replay = await http.post(PATH, content=body, headers=slack_headers(body))
    assert replay.status_code == 200
    assert replay.json() == {"status": "duplicate", "detail": "comment or action seen before"}


async def test_a_deeply_nested_payload_is_400_json(http: httpx.AsyncClient, store: Store) -> None:
    """A signed interaction whose ``payload`` nests 5,000 levels was a 500 (RecursionError)."""
    body = urlencode({"payload": "[" * 5000 + "]" * 5000}).encode()
    answer = await http.post(PATH, content=body, headers=slack_headers(body))
    assert answer.status_code == 400
    assert answer.json()["error"] == "too_deep"
    # The server goes on serving.
    task_id = await plan_waiting(store)
    body = click("approve", task_id)
    assert (await http.post(PATH, content=body, headers=slack_headers(body))).status_code == 200


async def test_revise_on_a_task_that_moved_on_is_refused_without_a_modal(
    http: httpx.AsyncClient, store: Store, slack: SlackStub
) -> None:
    task_id = await plan_waiting(store)
    await move_to(store, task_id, TaskStatus.APPROVED)
    body = click("revise", task_id)
    answer = await http.post(PATH, content=body, headers=slack_headers(body))
    assert answer.status_code == 409
    assert answer.json() == {"error": "conflict", "detail": f"task {task_id} is approved"}
    assert slack.calls("views.open") == []
    log = await log_text(store, task_id)
    assert f"revise from slack by lee (slack U024BE7LH) refused: task {task_id} is approved" in log

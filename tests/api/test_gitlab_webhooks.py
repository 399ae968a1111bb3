"""``POST /webhooks/gitlab``: the token check, who may command, dedupe by event UUID."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import FIXTURES, app_client, just_written, move_to

PROJECT = "acme/platform/payments-api"
TOKEN = "gitlab-hook-token-5d1e0c"
ISSUE: dict[str, Any] = json.loads((FIXTURES / "gitlab-issue-labeled.json").read_text())
NOTE: dict[str, Any] = json.loads((FIXTURES / "gitlab-note-approve.json").read_text())


@pytest.fixture
async def http(settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    own = settings.model_copy(
        update={"gitlab_webhook_secret": SecretStr(TOKEN), "gitlab_approvers": "lee-lead"}
    )
    async with app_client(own, redis) as client:
        yield client


async def deliver(
    http: httpx.AsyncClient,
    event: str,
    payload: dict[str, Any],
    uuid: str,
    *,
    token: str | bytes | None = TOKEN,
) -> httpx.Response:
    headers = [(b"content-type", b"application/json"), (b"x-gitlab-event", event.encode())]
    headers.append((b"x-gitlab-event-uuid", uuid.encode()))
    if token is not None:
        headers.append((b"x-gitlab-token", token if isinstance(token, bytes) else token.encode()))
    # A note as GitLab sends it when it is written, now: after the plan it decides on.
    body = just_written(payload) if event == "Note Hook" else payload
    return await http.post("/webhooks/gitlab", content=json.dumps(body), headers=headers)


def note(text: str, *, username: str = "lee-lead") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(json.dumps(NOTE))
    payload["object_attributes"]["note"] = text
    payload["user"]["username"] = username
    return payload


async def pending(http: httpx.AsyncClient, store: Store) -> str:
    created = await deliver(http, "Issue Hook", ISSUE, "issue-1")
    assert created.status_code == 202, created.text
    task_id: str = created.json()["task_id"]
    await move_to(store, task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "PLAN: guard"})
    return task_id


async def messages(store: Store, task_id: str) -> list[str]:
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return [e.message for e in entries]


async def test_forged_or_missing_token_is_401_and_starts_nothing(
    http: httpx.AsyncClient, store: Store
) -> None:
    # A near miss, empty, absent, longer, and bytes that are not ASCII.
    forged = ("gitlab-hook-token-5d1e0d", "", None, TOKEN + "x", ("ü" + TOKEN[1:]).encode())
    for number, token in enumerate(forged):
        refused = await deliver(http, "Issue Hook", ISSUE, f"forged-{number}", token=token)
        assert refused.status_code == 401, token
        assert refused.json()["error"] == "bad_signature"
    assert await store.tasks.count(TaskStatus.QUEUED) == 0
    # The same delivery with the right token afterwards is not taken for a duplicate.
    assert (await deliver(http, "Issue Hook", ISSUE, "forged-2")).status_code == 202


async def test_replayed_event_uuid_is_a_duplicate_no_op(
    http: httpx.AsyncClient, store: Store
) -> None:
    first = await deliver(http, "Issue Hook", ISSUE, "3b0b1a52-6f1e-4e7c-9d8a-0c1f2e3d4b5a")
    again = await deliver(http, "Issue Hook", ISSUE, "3b0b1a52-6f1e-4e7c-9d8a-0c1f2e3d4b5a")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["task_id"] == first.json()["task_id"]
    assert await store.tasks.count(TaskStatus.QUEUED) == 1

    task_id = first.json()["task_id"]
    await move_to(store, task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "PLAN: guard"})
    approved = await deliver(http, "Note Hook", NOTE, "note-uuid-1")
    assert approved.json()["status"] == "approved"
    replayed = await deliver(http, "Note Hook", NOTE, "note-uuid-1")
    assert replayed.status_code == 200 and replayed.json()["status"] == "duplicate"
    approvals = [m for m in await messages(store, task_id) if "approved by" in m]
    assert approvals == [
        "[system] status approved: approved by lee-lead (gitlab): looks right, go ahead"
    ]


async def test_non_approver_is_403_and_logged(http: httpx.AsyncClient, store: Store) -> None:
    task_id = await pending(http, store)
    spoof = note("@hookagent approve", username="mallory")
    spoof["user"]["name"] = "lee-lead"  # a display name anyone can pick counts for nothing
    refused = await deliver(http, "Note Hook", spoof, "n")
    assert refused.status_code == 403, refused.text
    assert (await store.tasks.get(task_id)).status is TaskStatus.PENDING_APPROVAL
    assert (
        "[system] approve from gitlab by mallory refused: not in HOOKAGENT_GITLAB_APPROVERS"
        in await messages(store, task_id)
    )


async def test_hookagents_own_notes_and_system_notes_are_not_commands(
    settings: Settings, redis: Redis, store: Store
) -> None:
    own = settings.model_copy(
        update={
            "gitlab_webhook_secret": SecretStr(TOKEN),
            "gitlab_approvers": "lee-lead,hookagent-bot",
            "gitlab_bot_username": "HookAgent-Bot",
        }
    )
    async with app_client(own, redis) as http:
        await pending(http, store)
        by_bot = note("@hookagent approve", username="hookagent-bot")
        marked = note("<!-- hookagent:task-1-ab -->\nTo go ahead, comment `@hookagent approve`")
        system = note("@hookagent approve")
        system["object_attributes"]["system"] = True
        for number, payload in enumerate((by_bot, marked, system)):
            answer = await deliver(http, "Note Hook", payload, f"own-{number}")
            assert answer.status_code == 200 and answer.json()["status"] == "ignored", answer.text


async def test_issues_without_the_label_start_nothing(http: httpx.AsyncClient) -> None:
    unlabelled = json.loads(json.dumps(ISSUE))
    unlabelled["changes"]["labels"]["current"] = unlabelled["changes"]["labels"]["previous"]
    edited = await deliver(http, "Issue Hook", unlabelled, "u-1")
    assert edited.json()["status"] == "ignored"
    pipeline = await deliver(http, "Pipeline Hook", {"object_kind": "pipeline"}, "u-2")
    assert pipeline.json()["status"] == "ignored"
    mismatched = await deliver(http, "Note Hook", ISSUE, "u-3")
    assert mismatched.json()["status"] == "ignored"


@pytest.mark.parametrize("required", [False, True])
async def test_without_a_secret_commands_are_401_and_tasks_follow_the_setting(
    settings: Settings, redis: Redis, store: Store, required: bool
) -> None:
    own = settings.model_copy(
        update={"gitlab_approvers": "lee-lead", "require_signatures": required}
    )
    async with app_client(own, redis) as http:
        created = await deliver(http, "Issue Hook", ISSUE, "i-1", token=None)
        assert created.status_code == (401 if required else 202), created.text
        command = await deliver(http, "Note Hook", NOTE, "n-1", token=None)
        assert command.status_code == 401
        assert "HOOKAGENT_GITLAB_WEBHOOK_SECRET" in command.json()["detail"]


async def test_nested_paths_only_for_gitlab(http: httpx.AsyncClient) -> None:
    deep = json.loads(json.dumps(ISSUE))
    deep["project"]["path_with_namespace"] = "a/b/c/d/e/f/payments-api"
    assert (await deliver(http, "Issue Hook", deep, "deep")).status_code == 202
    for bad in ("a/../etc", "solo", "a//b", "a/b.", "-a/b/c"):
        deep["project"]["path_with_namespace"] = bad
        refused = await deliver(http, "Issue Hook", deep, f"bad-{bad}")
        assert refused.status_code == 422, bad

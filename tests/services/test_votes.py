"""Approvals that cannot be forged or replayed: votes per identity, commands per comment id.

The attacks: a signed ``@hookagent approve`` comment re-sent under a new
``X-GitHub-Delivery`` approved the next task on the same issue; a person renamed between
two votes counted twice on an ``approvals = 2`` policy; a comment written before the plan
approved it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import REPO, app_client, just_written, move_to
from tests.services.test_intake import (
    GITHUB_COMMENT,
    GITHUB_ISSUE,
    SECRET,
    github,
    pending_github_task,
)
from tests.services.test_lifecycle import messages

TWO = f'[repo."{REPO}"]\napprovals = 2\n'
TOKENS = "operator:ops:ops-token-0123456789,operator:dana:dana-token-0123456789"


@pytest.fixture
def two_approvals(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "hookagent.toml"
    path.write_text(TWO)
    return settings.model_copy(
        update={
            "policy_file": path,
            "github_webhook_secret": SecretStr(SECRET),
            "github_approvers": "lee-lead, lee-l, kim",
        }
    )


@pytest.fixture
async def http(two_approvals: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(two_approvals, redis) as client:
        yield client


@pytest.fixture
async def one_approval(settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    own = settings.model_copy(
        update={"github_webhook_secret": SecretStr(SECRET), "github_approvers": "lee-lead"}
    )
    async with app_client(own, redis) as client:
        yield client


def comment_by(
    login: str, user_id: int, comment_id: int, *, text: str = "@hookagent approve"
) -> dict[str, Any]:
    """A new GitHub comment (written now) by the account ``user_id``, now called ``login``."""
    payload: dict[str, Any] = json.loads(json.dumps(GITHUB_COMMENT))
    payload["comment"].update(
        id=comment_id,
        body=text,
        user={"login": login, "id": user_id, "type": "User"},
        created_at="",
    )
    payload["sender"] = {"login": login, "id": user_id, "type": "User"}
    return just_written(payload)


async def test_a_replayed_comment_approves_nothing_on_the_next_task(
    one_approval: httpx.AsyncClient, store: Store
) -> None:
    """Same ``comment.id`` under a new delivery id: the comment was used, once."""
    http = one_approval
    first = await pending_github_task(http, store)
    approved = await github(http, "issue_comment", GITHUB_COMMENT, "delivery-1")
    assert approved.json()["status"] == "approved", approved.text
    await move_to(store, first, TaskStatus.COMPLETED)
    # The same issue labelled again: the next task, waiting for approval.
    again = await github(http, "issues", GITHUB_ISSUE, "issue-again")
    assert again.status_code == 202, again.text
    second = again.json()["task_id"]
    await move_to(store, second, TaskStatus.PENDING_APPROVAL, fields={"plan": "the next plan"})
    replay = await github(http, "issue_comment", GITHUB_COMMENT, "delivery-2")
    assert replay.status_code == 200
    assert replay.json() == {"status": "duplicate", "detail": "comment or action seen before"}
    task = await store.tasks.get(second)
    assert (task.status, task.approver) == (TaskStatus.PENDING_APPROVAL, None)


async def test_a_comment_written_before_the_plan_approves_nothing(
    one_approval: httpx.AsyncClient, store: Store
) -> None:
    http = one_approval
    tid = await pending_github_task(http, store)
    ready = datetime.fromisoformat((await store.tasks.get(tid)).updated_at).timestamp()
    early = just_written(comment_by("lee-lead", 4242, 9001), at=ready - 5)
    answer = await github(http, "issue_comment", early, "early-1")
    # 200: the sender must not retry it; nothing changed, and the answer says why.
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "ignored",
        "reason": "the comment was written before the plan it would decide was ready",
        "task_id": tid,
    }
    assert (await store.tasks.get(tid)).status is TaskStatus.PENDING_APPROVAL
    assert (await messages(store, tid))[-1] == (
        "[system] approve from github by lee-lead ignored: "
        "the comment was written before the plan it would decide was ready"
    )
    # Written once the plan was ready (in the same second is after): it approves.
    late = just_written(comment_by("lee-lead", 4242, 9002), at=ready)
    assert (await github(http, "issue_comment", late, "late-1")).json()["status"] == "approved"


async def test_a_comment_written_before_the_task_commands_nothing(
    one_approval: httpx.AsyncClient, store: Store
) -> None:
    http = one_approval
    tid = await pending_github_task(http, store)
    await move_to(store, tid, TaskStatus.QUEUED)  # revised: planning again
    created = datetime.fromisoformat((await store.tasks.get(tid)).created_at).timestamp()
    old = just_written(
        comment_by("lee-lead", 4242, 9003, text="@hookagent cancel"), at=created - 60
    )
    answer = await github(http, "issue_comment", old, "old-cancel")
    assert answer.json()["status"] == "ignored", answer.text
    assert f"before task {tid} existed" in answer.json()["reason"]
    assert (await store.tasks.get(tid)).status is TaskStatus.QUEUED


async def test_a_github_login_renamed_between_two_votes_is_one_vote(
    http: httpx.AsyncClient, store: Store
) -> None:
    tid = await pending_github_task(http, store)
    first = await github(http, "issue_comment", comment_by("lee-lead", 4242, 1), "v-1")
    assert first.json()["status"] == "pending_approval", first.text
    # The same account (id 4242) under a new login: still one voter.
    renamed = await github(http, "issue_comment", comment_by("lee-l", 4242, 2), "v-2")
    assert renamed.json()["status"] == "pending_approval", renamed.text
    assert (await store.tasks.get(tid)).status is TaskStatus.PENDING_APPROVAL
    assert (await messages(store, tid))[-1] == (
        "[system] approval already counted by lee-l (github) (1 of 2)"
    )
    second = await github(http, "issue_comment", comment_by("kim", 77, 3), "v-3")
    assert second.json()["status"] == "approved", second.text
    assert await store.tasks.approvers(tid) == [
        "github:4242\tlee-l (github)",
        "github:4242\tlee-lead (github)",
        "github:77\tkim (github)",
    ]


async def test_a_github_approver_listed_by_user_id_survives_a_rename(
    settings: Settings, redis: Redis, store: Store
) -> None:
    """``id:<user id>`` in the list: whoever holds the login later is not the approver."""
    own = settings.model_copy(
        update={"github_webhook_secret": SecretStr(SECRET), "github_approvers": "id:4242"}
    )
    async with app_client(own, redis) as http:
        tid = await pending_github_task(http, store)
        squatter = await github(http, "issue_comment", comment_by("lee-lead", 666, 11), "s-1")
        assert squatter.status_code == 403, squatter.text
        renamed = await github(http, "issue_comment", comment_by("lee-l", 4242, 12), "s-2")
        assert renamed.json()["status"] == "approved", renamed.text
    assert (await store.tasks.get(tid)).approver == "lee-l (github)"


async def test_api_votes_count_per_token_name(
    two_approvals: Settings, redis: Redis, store: Store
) -> None:
    tid = await pending_in_store(store)
    own = two_approvals.model_copy(update={"api_tokens": SecretStr(TOKENS)})
    async with app_client(own, redis) as http:
        ops = {"authorization": "Bearer ops-token-0123456789"}
        dana = {"authorization": "Bearer dana-token-0123456789"}
        assert (await http.post(f"/tasks/{tid}/approve", headers=ops)).json()["status"] == (
            "pending_approval"
        )
        again = await http.post(f"/tasks/{tid}/approve", headers=ops)
        assert again.json()["status"] == "pending_approval"
        done = await http.post(f"/tasks/{tid}/approve", headers=dana)
        assert done.json()["status"] == "approved", done.text
    assert await store.tasks.approvers(tid) == ["api:dana\tdana", "api:ops\tops"]


async def test_anonymous_callers_are_one_voter_whatever_their_address(
    two_approvals: Settings, redis: Redis, store: Store
) -> None:
    """Without tokens the API's one caller is the anonymous admin: two addresses, one vote."""
    tid = await pending_in_store(store)
    for address in ("127.0.0.1", "127.0.0.2"):
        async with app_client(two_approvals, redis, address=address) as http:
            answer = await http.post(f"/tasks/{tid}/approve")
            assert answer.json()["status"] == "pending_approval", answer.text
    assert (await store.tasks.get(tid)).status is TaskStatus.PENDING_APPROVAL
    assert [b.split("\t")[0] for b in await store.tasks.approvers(tid)] == ["api:anonymous"] * 2


async def pending_in_store(store: Store) -> str:
    """A task of ``REPO`` waiting for approval, made in the store."""
    task = await store.tasks.create(NewTask(source="api", repository=REPO, title="t", prompt="p"))
    await move_to(store, task.task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "p"})
    return task.task_id


async def test_an_approval_of_an_expired_plan_is_logged_once(
    settings: Settings, redis: Redis, store: Store
) -> None:
    """The expiry is the transition's status line; the refusal repeated it on a second line."""
    own = settings.model_copy(
        update={
            "github_webhook_secret": SecretStr(SECRET),
            "github_approvers": "lee-lead",
            "approval_ttl": 0.001,
        }
    )
    async with app_client(own, redis) as http:
        tid = await pending_github_task(http, store)
        answer = await github(http, "issue_comment", comment_by("lee-lead", 4242, 5), "exp-1")
    assert answer.status_code == 409 and "approval expired" in answer.json()["detail"]
    log = await messages(store, tid)
    assert [m for m in log if "approval expired" in m] == [
        "[system] status cancelled: approval expired after 0s (HOOKAGENT_APPROVAL_TTL)"
    ]

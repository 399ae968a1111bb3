"""``POST /webhooks/linear``: signature and timestamp, repository choice, commands, dedupe."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import FIXTURES, REPO, app_client, just_written, move_to

SECRET = "lin_wh_5d1e0c9b8a7f6e5d4c3b2a19"
ISSUE: dict[str, Any] = json.loads((FIXTURES / "linear-issue-create.json").read_text())
COMMENT: dict[str, Any] = json.loads((FIXTURES / "linear-comment-approve.json").read_text())
ISSUE_ID = ISSUE["data"]["id"]
LEE = COMMENT["data"]["user"]


@pytest.fixture
def own(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "linear_webhook_secret": SecretStr(SECRET),
            # By id only: a display name is free text anyone can set.
            "linear_approvers": LEE["id"],
            "linear_projects": f"Payments={REPO}",
        }
    )


@pytest.fixture
async def http(own: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(own, redis) as client:
        yield client


def fresh(payload: dict[str, Any], *, age_s: float = 0) -> bytes:
    """``payload`` as Linear sends it now (or ``age_s`` ago): its own ``webhookTimestamp``.

    A comment is one written then, too (``data.createdAt``).
    """
    copy = just_written(payload, at=time.time() - age_s)
    copy["webhookTimestamp"] = int((time.time() - age_s) * 1000)
    return json.dumps(copy).encode()


async def deliver(
    http: httpx.AsyncClient,
    body: bytes,
    delivery: str,
    *,
    secret: str | None = SECRET,
    signature: str | None = None,
) -> httpx.Response:
    kind = json.loads(body).get("type", "Issue")
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"linear-delivery", delivery.encode()),
        (b"linear-event", str(kind).encode()),
        (b"user-agent", b"Linear-Webhook"),
    ]
    if signature is None and secret is not None:
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if signature is not None:
        # Bytes: a forged header may hold anything, not only ASCII.
        headers.append((b"linear-signature", signature.encode()))
    return await http.post("/webhooks/linear", content=body, headers=headers)


def comment(text: str, *, user: dict[str, str] = LEE) -> dict[str, Any]:
    """A new comment (its own id, as each Linear comment has) by ``user``."""
    payload: dict[str, Any] = json.loads(json.dumps(COMMENT))
    payload["data"].update(body=text, user=user, userId=user["id"], id=str(uuid.uuid4()))
    return payload


async def pending(http: httpx.AsyncClient, store: Store, issue_id: str = ISSUE_ID) -> str:
    issue = json.loads(json.dumps(ISSUE))
    issue["data"]["id"] = issue_id
    created = await deliver(http, fresh(issue), "d-issue")
    assert created.status_code == 202, created.text
    task_id: str = created.json()["task_id"]
    await move_to(store, task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "PLAN: guard"})
    return task_id


async def messages(store: Store, task_id: str) -> list[str]:
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return [e.message for e in entries]


async def test_labelled_issue_is_a_task_for_the_projects_repository(
    http: httpx.AsyncClient, store: Store
) -> None:
    created = await deliver(http, fresh(ISSUE), "d-1")
    assert created.status_code == 202, created.text
    task = await store.tasks.get(created.json()["task_id"])
    assert (task.source, task.forge, task.repository) == ("linear", "github", REPO)
    assert task.external_id == ISSUE_ID and task.title.startswith("ENG-412: Checkout total")
    assert task.url == ISSUE["url"]
    assert "Project: Payments" in task.prompt and "ZeroDivisionError" in task.prompt


async def test_a_repo_label_wins_over_the_project_and_the_default(
    own: Settings, redis: Redis, store: Store
) -> None:
    labelled = json.loads(json.dumps(ISSUE))
    labelled["data"]["labels"].append({"id": "l-3", "name": "repo:acme/storefront"})
    allowed = {"default_repo": "acme/other", "linear_projects": "Web=acme/storefront"}
    async with app_client(own.model_copy(update=allowed), redis) as http:
        created = await deliver(http, fresh(labelled), "d-label")
        assert (await store.tasks.get(created.json()["task_id"])).repository == "acme/storefront"
        labelled["data"]["id"] = "another-issue"
        labelled["data"]["labels"].pop()
        labelled["data"]["project"] = {"id": "p", "name": "Unmapped"}
        created = await deliver(http, fresh(labelled), "d-default")
        assert (await store.tasks.get(created.json()["task_id"])).repository == "acme/other"
    async with app_client(own.model_copy(update={"linear_projects": ""}), redis) as http:
        labelled["data"]["id"] = "a-third-issue"
        refused = await deliver(http, fresh(labelled), "d-none")
        assert refused.status_code == 422 and "HOOKAGENT_LINEAR_PROJECTS" in refused.text


async def test_a_repo_label_must_name_a_repository_configured_for_linear(
    own: Settings, redis: Redis, store: Store
) -> None:
    labelled = json.loads(json.dumps(ISSUE))
    labelled["data"]["labels"].append({"id": "l-3", "name": "repo:acme/secrets"})
    async with app_client(own, redis) as http:
        refused = await deliver(http, fresh(labelled), "d-any")
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert "acme/secrets" in detail and "HOOKAGENT_ALLOWED_REPOS" in detail
        assert "HOOKAGENT_LINEAR_PROJECTS" in detail
    assert await store.tasks.count(TaskStatus.QUEUED) == 0
    listed = own.model_copy(update={"allowed_repos": f"{REPO},acme/secrets"})
    async with app_client(listed, redis) as http:
        created = await deliver(http, fresh(labelled), "d-listed")
        assert created.status_code == 202, created.text
        assert (await store.tasks.get(created.json()["task_id"])).repository == "acme/secrets"


async def test_bad_or_missing_signature_is_401_and_starts_nothing(
    http: httpx.AsyncClient, store: Store
) -> None:
    # A body whose signature ends in "0", the case where the old near miss (``good[:-1] +
    # "0"``) was the real signature and the test failed (one run in sixteen).
    body = next(
        b
        for b in (fresh(ISSUE, age_s=ms / 1000) for ms in range(1000))
        if hmac.new(SECRET.encode(), b, hashlib.sha256).hexdigest().endswith("0")
    )
    good = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    forged = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    near = good[:-1] + ("1" if good.endswith("0") else "0")  # the last digit, always changed
    for number, signature in enumerate((forged, near, "", "ü" + good[1:], good + "0")):
        refused = await deliver(http, body, f"forged-{number}", signature=signature)
        assert refused.status_code == 401, signature
        assert refused.json()["error"] == "bad_signature"
    missing = await deliver(http, body, "forged-missing", secret=None)
    assert missing.status_code == 401
    # A body changed after signing: the signature is of the bytes, not of the JSON.
    reordered = json.dumps(json.loads(body), indent=1).encode()
    assert (await deliver(http, reordered, "forged-x", signature=good)).status_code == 401
    assert await store.tasks.count(TaskStatus.QUEUED) == 0
    assert (await deliver(http, body, "forged-1")).status_code == 202


@pytest.mark.parametrize("age_s", [61, 3600, -61])
async def test_a_stale_or_future_timestamp_is_401(
    http: httpx.AsyncClient, store: Store, age_s: float
) -> None:
    refused = await deliver(http, fresh(ISSUE, age_s=age_s), f"stale-{age_s}")
    assert refused.status_code == 401, refused.text
    assert "webhookTimestamp" in refused.json()["detail"]
    for number, stamp in enumerate((None, "1795000364104", 10**400, float("nan"), -1)):
        odd = json.dumps(dict(ISSUE, webhookTimestamp=stamp)).encode()  # NaN as JSON's NaN
        refused = await deliver(http, odd, f"odd-{number}")
        assert refused.status_code == 401, stamp
    assert await store.tasks.count(TaskStatus.QUEUED) == 0


async def test_replayed_delivery_is_a_no_op(http: httpx.AsyncClient, store: Store) -> None:
    body = fresh(ISSUE)
    first = await deliver(http, body, "6e1f0c2a-delivery")
    again = await deliver(http, body, "6e1f0c2a-delivery")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["task_id"] == first.json()["task_id"]
    assert await store.tasks.count(TaskStatus.QUEUED) == 1

    task_id = first.json()["task_id"]
    await move_to(store, task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "PLAN: guard"})
    approve = fresh(COMMENT)
    approved = await deliver(http, approve, "comment-delivery-1")
    assert approved.status_code == 200, approved.text
    assert approved.json() == {
        "task_id": task_id,
        "status": "approved",
        "previous": "pending_approval",
    }
    replayed = await deliver(http, approve, "comment-delivery-1")
    assert replayed.status_code == 200 and replayed.json()["status"] == "duplicate"
    approvals = [m for m in await messages(store, task_id) if "approved by" in m]
    assert approvals == ["[system] status approved: approved by Lee Lead (linear): looks right"]


async def test_non_approver_is_403_and_logged(http: httpx.AsyncClient, store: Store) -> None:
    task_id = await pending(http, store)
    mallory = {"id": "m-1", "name": "Mallory", "email": "mallory@example.com"}
    refused = await deliver(http, fresh(comment("@hookagent approve", user=mallory)), "c-m")
    assert refused.status_code == 403, refused.text
    assert (await store.tasks.get(task_id)).status is TaskStatus.PENDING_APPROVAL
    assert (
        "[system] approve from linear by Mallory refused: not in HOOKAGENT_LINEAR_APPROVERS"
        in await messages(store, task_id)
    )
    # The approver list names Lee by id only: his approval counts.
    by_id = await deliver(http, fresh(comment("@hookagent approve")), "c-lee")
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["status"] == "approved"


async def test_a_display_name_or_the_actor_is_no_identity(
    own: Settings, redis: Redis, store: Store
) -> None:
    settings = own.model_copy(update={"linear_approvers": f"lee@example.com,Lee Lead,{LEE['id']}"})
    async with app_client(settings, redis) as http:
        task_id = await pending(http, store)
        # Display names are free text: Mallory calls herself after Lee's e-mail and name.
        for number, name in enumerate(("lee@example.com", "Lee Lead")):
            mallory = {"id": f"m-{number}", "name": name, "email": "mallory@example.com"}
            payload = fresh(comment("@hookagent approve", user=mallory))
            refused = await deliver(http, payload, f"m-{number}")
            assert refused.status_code == 403, refused.text
        assert (await store.tasks.get(task_id)).status is TaskStatus.PENDING_APPROVAL
        # No data.user: the envelope's actor (Lee) says nothing about the comment's author.
        anonymous = comment("@hookagent approve")
        del anonymous["data"]["user"], anonymous["data"]["userId"]
        # Synced from Slack or e-mail: Linear vouches for no identity of its author.
        synced = comment("@hookagent approve")
        synced["data"]["externalUserId"] = "ext-1"
        synced_user = comment("@hookagent approve")
        synced_user["data"]["externalUser"] = {"id": "ext-2", "name": "Lee Lead"}
        for number, variant in enumerate((anonymous, synced, synced_user)):
            answer = await deliver(http, fresh(variant), f"x-{number}")
            assert answer.status_code == 200 and answer.json()["status"] == "ignored", answer.text
        assert (await store.tasks.get(task_id)).status is TaskStatus.PENDING_APPROVAL
    by_mail = own.model_copy(update={"linear_approvers": "LEE@example.com"})
    async with app_client(by_mail, redis) as http:
        # An e-mail from data.user is Linear's account record: it counts.
        approved = await deliver(http, fresh(comment("@hookagent approve")), "e-1")
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        await pending(http, store, issue_id="6a0e9a8b-3c4d-4e1f-8a7b-6c5d4e3f2a1c")
        # So does the envelope's actor's, when the actor is the comment's author.
        no_mail = comment("@hookagent approve", user={"id": LEE["id"], "name": "Lee"})
        no_mail["data"]["issueId"] = "6a0e9a8b-3c4d-4e1f-8a7b-6c5d4e3f2a1c"
        approved = await deliver(http, fresh(no_mail), "e-2")
        assert approved.status_code == 200 and approved.json()["status"] == "approved"


async def test_one_person_under_two_names_is_one_vote(
    own: Settings, redis: Redis, store: Store, tmp_path: Path
) -> None:
    policy = tmp_path / "hookagent.toml"
    policy.write_text(f'[repo."{REPO}"]\napprovals = 2\n')
    async with app_client(own.model_copy(update={"policy_file": policy}), redis) as http:
        task_id = await pending(http, store)
        for number, name in enumerate(("Lee Lead", "Lee L.")):
            renamed = dict(LEE, name=name)
            answer = await deliver(
                http, fresh(comment("@hookagent approve", user=renamed)), f"v-{number}"
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "pending_approval", number
        assert (await store.tasks.get(task_id)).status is TaskStatus.PENDING_APPROVAL
        # A ballot per name (``<voter>\t<name>``), both cast by the one voter.
        ballots = await store.tasks.approvers(task_id)
        assert {b.split("\t")[0] for b in ballots} == {f"linear:{LEE['id']}"}


async def test_a_signed_comment_replayed_under_a_new_delivery_id_is_a_duplicate(
    http: httpx.AsyncClient, store: Store
) -> None:
    task_id = await pending(http, store)
    revise = fresh(comment("@hookagent revise guard the empty cart"))
    assert (await deliver(http, revise, "r-1")).json()["status"] == "queued"
    await move_to(store, task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "PLAN: v2"})
    for header in ("r-2", ""):
        replayed = await deliver(http, revise, header)
        assert replayed.status_code == 200 and replayed.json()["status"] == "duplicate", header
    revisions = [m for m in await messages(store, task_id) if "revision requested" in m]
    assert len(revisions) == 1


async def test_a_signed_issue_replayed_under_a_new_delivery_id_starts_nothing(
    http: httpx.AsyncClient, store: Store
) -> None:
    body = fresh(ISSUE)
    first = await deliver(http, body, "i-1")
    assert first.status_code == 202, first.text
    # Even once its task ended, the same signed delivery does not start another.
    await move_to(store, first.json()["task_id"], TaskStatus.CANCELLED)
    for header in ("i-2", ""):
        again = await deliver(http, body, header)
        assert again.status_code == 200 and again.json()["duplicate"] is True, header
    assert await store.tasks.count(TaskStatus.QUEUED) == 0


async def test_hookagents_own_comments_are_not_commands(
    own: Settings, redis: Redis, store: Store
) -> None:
    bot = {"id": "b0b0b0b0-bot", "name": "hookagent", "email": "bot@example.com"}
    settings = own.model_copy(
        update={"linear_approvers": "Lee Lead,hookagent", "linear_bot_user": "B0B0B0B0-bot"}
    )
    async with app_client(settings, redis) as http:
        task_id = await pending(http, store)
        by_bot = comment("@hookagent approve", user=bot)
        marked = comment(f"To go ahead, comment `@hookagent approve`\n\n_hookagent:{task_id}_")
        by_app = comment("@hookagent approve")
        by_app["data"]["botActor"] = {
            "id": "app",
            "name": "Some integration",
            "type": "oauthClient",
        }
        edited = dict(comment("@hookagent approve"), action="update")
        for number, payload in enumerate((by_bot, marked, by_app, edited)):
            answer = await deliver(http, fresh(payload), f"own-{number}")
            assert answer.status_code == 200 and answer.json()["status"] == "ignored", answer.text
        assert (await store.tasks.get(task_id)).status is TaskStatus.PENDING_APPROVAL


async def test_issues_that_do_not_get_the_label_start_nothing(http: httpx.AsyncClient) -> None:
    unlabelled = json.loads(json.dumps(ISSUE))
    unlabelled["data"]["labels"] = unlabelled["data"]["labels"][1:]
    # An update that keeps the label (it was there before) is not a new request.
    kept = dict(ISSUE, action="update", updatedFrom={"labelIds": ISSUE["data"]["labelIds"]})
    titled = dict(ISSUE, action="update", updatedFrom={"title": "old"})
    project = {"action": "create", "type": "Project", "data": {"id": "p"}}
    for number, payload in enumerate((unlabelled, kept, titled, project)):
        answer = await deliver(http, fresh(payload), f"u-{number}")
        assert answer.status_code == 200 and answer.json()["status"] == "ignored", answer.text
    added = dict(ISSUE, action="update", updatedFrom={"labelIds": [ISSUE["data"]["labelIds"][1]]})
    assert (await deliver(http, fresh(added), "u-added")).status_code == 202


@pytest.mark.parametrize("required", [False, True])
async def test_without_a_secret_commands_are_401_and_tasks_follow_the_setting(
    settings: Settings, redis: Redis, required: bool
) -> None:
    own = settings.model_copy(
        update={
            "linear_approvers": "Lee Lead",
            "require_signatures": required,
            "default_repo": REPO,
        }
    )
    async with app_client(own, redis) as http:
        created = await deliver(http, fresh(ISSUE), "i-1", secret=None)
        assert created.status_code == (401 if required else 202), created.text
        command = await deliver(http, fresh(COMMENT), "n-1", secret=None)
        assert command.status_code == 401
        assert "HOOKAGENT_LINEAR_WEBHOOK_SECRET" in command.json()["detail"]


async def test_ids_that_are_no_linear_ids_are_422(http: httpx.AsyncClient, store: Store) -> None:
    odd_issue = json.loads(json.dumps(ISSUE))
    odd_issue["data"]["id"] = "x\n[system] status approved"
    long_issue = json.loads(json.dumps(ISSUE))
    long_issue["data"]["id"] = "a" * 65
    odd_comment = comment("@hookagent approve")
    odd_comment["data"]["issueId"] = "x y"
    odd_user = comment("@hookagent approve", user=dict(LEE, id="lee\nlead"))
    for number, payload in enumerate((odd_issue, long_issue, odd_comment, odd_user)):
        refused = await deliver(http, fresh(payload), f"odd-{number}")
        assert refused.status_code == 422, refused.text
        assert "not a Linear id" in refused.json()["detail"]
    assert await store.tasks.count(TaskStatus.QUEUED) == 0

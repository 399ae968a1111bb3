"""The Linear reply sender on the GraphQL stub: a redelivered event finds its own comment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hookagent.forges.linear import LinearClient
from hookagent.models import Task, TaskStatus
from hookagent.notify.base import Delivery
from hookagent.notify.linear import LinearReply
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import OutboxEvent
from tests.helpers import REPO
from tests.linear_stub import LinearStub

ISSUE = "5f0e9a8b-3c4d-4e1f-8a7b-6c5d4e3f2a1b"


@pytest.fixture
def linear() -> Iterator[LinearStub]:
    with LinearStub() as stub:
        yield stub


def delivery(task: Task, deliveries: int, state: dict[str, str]) -> Delivery:
    event = OutboxEvent(
        event_id="1-0",
        task_id=task.task_id,
        event=task.status.value,
        previous="discovering",
        at=task.updated_at,
        attempt=1,
        reason="",
        deliveries=deliveries,
    )

    async def save(fields: dict[str, str]) -> None:
        return None

    return Delivery(event=event, task=task, state=state, save=save)


async def test_a_redelivery_edits_the_comment_an_earlier_try_wrote(
    settings: Settings, linear: LinearStub
) -> None:
    task = Task(
        task_id="task-1-abc",
        source="linear",
        repository=REPO,
        title="ENG-412: t",
        prompt="p",
        status=TaskStatus.PENDING_APPROVAL,
        plan="PLAN: guard the division",
        external_id=ISSUE,
        created_at="2026-11-25T05:30:00.000Z",
        updated_at="2026-11-25T05:31:00.000Z",
    )
    client = LinearClient(api_url=linear.api_url, api_key=LinearStub.KEY, timeout=30)
    sender = LinearReply(client=client, settings=settings, redactor=Redactor([]))
    # Someone else's comment quoting another task's marker is not ours.
    await client.write_comment(ISSUE, "see _hookagent:task-9-zzz_")
    first = delivery(task, 1, {})
    await sender.deliver(first)
    written = first.state["comment_id"]
    # The first try wrote the comment but died before its state was saved: the retry comes
    # with no comment_id and must edit that comment, not write a second one.
    again = delivery(task, 2, {})
    await sender.deliver(again)
    assert again.state["comment_id"] == written
    assert [w["op"] for w in linear.writes()] == ["commentCreate", "commentCreate", "commentUpdate"]
    body = linear.comments[written]["body"]
    assert "PLAN: guard the division" in body and body.endswith("_hookagent:task-1-abc_")
    assert "HOOKAGENT_LINEAR_APPROVERS" in body


async def test_a_users_comment_quoting_the_marker_is_never_edited(
    settings: Settings, linear: LinearStub
) -> None:
    task = Task(
        task_id="task-2-abc",
        source="linear",
        repository=REPO,
        title="ENG-412: t",
        prompt="p",
        status=TaskStatus.PENDING_APPROVAL,
        plan="PLAN: guard",
        external_id=ISSUE,
        created_at="2026-11-25T05:30:00.000Z",
        updated_at="2026-11-25T05:31:00.000Z",
    )
    # A person quotes this task's marker before the first try (which then dies unsaved).
    quoted = {
        "id": "c-quote",
        "body": "why did _hookagent:task-2-abc_ say that?",
        "createdAt": "2026-11-25T05:30:30.000Z",
        "user": {"id": "u-lee", "name": "Lee"},
        "botActor": None,
    }
    linear.issue(ISSUE)["comments"].append(quoted)
    linear.comments["c-quote"] = quoted
    client = LinearClient(api_url=linear.api_url, api_key=LinearStub.KEY, timeout=30)
    sender = LinearReply(client=client, settings=settings, redactor=Redactor([]))
    again = delivery(task, 2, {})
    await sender.deliver(again)
    assert quoted["body"] == "why did _hookagent:task-2-abc_ say that?"
    assert again.state["comment_id"] != "c-quote"
    assert [w["op"] for w in linear.writes()] == ["commentCreate"]
    # The API key's user is asked for once per client, not once per delivery.
    await sender.deliver(delivery(task, 2, {}))
    viewer_queries = [r for r in linear.requests if "viewer" in r["body"]["query"]]
    assert len(viewer_queries) == 1

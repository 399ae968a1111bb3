"""Replies on the source: the Jira comment edited in place and the transition; hookagent's own
comments are never read back as commands."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from hookagent.models import CheckResult, NewTask, Task, TaskStatus
from hookagent.notify.replies import markdown_reply
from hookagent.settings import Settings
from hookagent.sources import Command, Ignored, parse_github, parse_jira
from hookagent.store import Store
from tests.helpers import FIXTURES, REPO, move_to
from tests.notify.conftest import StartNotifier
from tests.notify_stubs import JiraStub


@pytest.fixture
def jira() -> Iterator[JiraStub]:
    with JiraStub() as stub:
        yield stub


def with_jira(settings: Settings, jira: JiraStub, **extra: object) -> Settings:
    """``settings`` replying on Jira issues through ``jira``."""
    credentials = {
        "jira_url": jira.url,
        "jira_email": "bot@acme.test",
        "jira_api_token": SecretStr("jira-token-0123456789"),
    }
    return settings.model_copy(update=credentials | extra)


async def test_jira_comment_is_edited_in_place_and_the_issue_moves_on_pr(
    settings: Settings, store: Store, start_notifier: StartNotifier, jira: JiraStub
) -> None:
    notifier = start_notifier(with_jira(settings, jira, jira_transition_on_pr="In Review"))
    task = await store.tasks.create(
        NewTask(
            source="jira", repository=REPO, title="PAY-231: fix", prompt="p", external_id="PAY-231"
        )
    )
    await move_to(store, task.task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "PLAN: guard"})
    # Comments show the task as it is when sent: let the plan be seen before it moves on.
    await asyncio.wait_for(notifier.notifier.wait_acked(2), 15)
    await move_to(store, task.task_id, TaskStatus.APPROVED, reason="approved by lee (jira)")
    pr = "https://github.com/acme/payments-api/pull/41"
    await move_to(store, task.task_id, TaskStatus.COMPLETED, fields={"pr_url": pr})
    # created, plan ready, approved, completed (move_to takes the shortest allowed path)
    await asyncio.wait_for(notifier.notifier.wait_acked(4), 15)

    writes = [r for r in jira.accepted() if "/comment" in r["path"]]
    assert (
        writes[0]["method"] == "POST" and writes[0]["path"] == "/rest/api/2/issue/PAY-231/comment"
    )
    assert {r["method"] for r in writes[1:]} == {"PUT"} and len(jira.comments) == 1
    assert {r["path"] for r in writes[1:]} == {"/rest/api/2/issue/PAY-231/comment/10000"}
    auth = base64.b64encode(b"bot@acme.test:jira-token-0123456789").decode()
    assert writes[0]["headers"]["authorization"] == f"Basic {auth}"
    assert any("@hookagent approve" in r["body"]["body"] for r in writes)
    final = jira.comments["10000"]
    assert pr in final and "Completed" in final and f"_hookagent:{task.task_id}_" in final
    [moved] = [r for r in jira.accepted() if r["method"] == "POST" and "transitions" in r["path"]]
    assert moved["body"] == {"transition": {"id": "31"}}

    # The comment coming back as a Jira webhook is not a command, though it says how to approve.
    echoed = json.loads((FIXTURES / "jira-comment-created.json").read_text())
    explained = next(r["body"]["body"] for r in writes if "@hookagent approve" in r["body"]["body"])
    echoed["comment"]["body"] = explained
    with pytest.raises(Ignored, match="own comment"):
        parse_jira(echoed, default_repo=None)


async def test_a_stored_hostile_jira_key_stays_one_path_segment(
    settings: Settings, store: Store, start_notifier: StartNotifier, jira: JiraStub
) -> None:
    """A task stored before keys were checked at intake cannot steer the comment elsewhere."""
    notifier = start_notifier(with_jira(settings, jira))
    hostile = "X-1/../../../rest/api/2/issue/SEC-7"
    new = NewTask(source="jira", repository=REPO, title="t", prompt="p", external_id=hostile)
    await store.tasks.create(new)
    await asyncio.wait_for(notifier.notifier.wait_acked(1), 15)
    quoted = "X-1%2F..%2F..%2F..%2Frest%2Fapi%2F2%2Fissue%2FSEC-7"
    assert [r["path"] for r in jira.requests] == [f"/rest/api/2/issue/{quoted}/comment"]


def github_comment(body: str, login: str = "lee-lead") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / "github-issue-comment.json").read_text())
    payload["comment"]["body"] = body
    payload["comment"]["user"] = {"login": login, "type": "User"}
    return payload


def test_github_comments_by_hookagent_are_ignored() -> None:
    marked = github_comment(
        "<!-- hookagent:task-1-abc -->\nTo go ahead, comment `@hookagent approve`"
    )
    with pytest.raises(Ignored, match="marker"):
        parse_github(marked, event="issue_comment", label="hookagent")
    by_bot = github_comment("@hookagent approve", login="HookAgent-Bot")
    with pytest.raises(Ignored, match="BOT_LOGIN"):
        parse_github(by_bot, event="issue_comment", label="hookagent", bot_login="hookagent-bot")
    person = parse_github(
        github_comment("@hookagent approve"), event="issue_comment", label="hookagent",
        bot_login="hookagent-bot",
    )  # fmt: skip
    assert isinstance(person, Command) and person.actor == "lee-lead"


def test_github_reply_shows_the_agents_todos_as_a_checklist(settings: Settings) -> None:
    task = Task(
        task_id="task-1-abc", source="github", repository=REPO, title="t", prompt="p",
        status=TaskStatus.EXECUTING, created_at="2026-11-25T05:30:00.000Z",
        updated_at="2026-11-25T05:31:00.000Z",
    )  # fmt: skip
    progress = {"todo_items": [{"content": "Guard empty list", "status": "completed"},
                               {"content": "Add test", "status": "in_progress"}]}  # fmt: skip
    body = markdown_reply(task, settings, progress, "approved by lee (github)")
    assert body.startswith("<!-- hookagent:task-1-abc -->")
    assert "- [x] Guard empty list\n- [ ] Add test" in body
    assert "Executing" in body and "> approved by lee (github)" in body


def test_the_status_comment_shows_the_checks(settings: Settings) -> None:
    task = Task(
        task_id="task-1-abc", source="github", repository=REPO, title="t", prompt="p",
        status=TaskStatus.COMPLETED, created_at="2026-11-25T05:30:00.000Z",
        updated_at="2026-11-25T05:31:00.000Z", pr_url="https://github.com/a/b/pull/1",
        checks={"test": CheckResult.FAILED},
    )  # fmt: skip
    assert '`checks: {"test": "failed"}`' in markdown_reply(task, settings, None, None)
    # Stored and read back as the API shows it.
    assert Task.from_hash(task.to_hash()).checks == {"test": "failed"}
    assert Task.from_hash({**task.to_hash(), "checks": ""}).checks == {}

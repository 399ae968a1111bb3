"""Jira payloads: plain and ADF descriptions, repository discovery."""

from __future__ import annotations

import json

import httpx
import pytest

from hookagent.errors import PayloadError
from hookagent.models import NewTask
from hookagent.sources import Command, Ignored, Verb, parse_jira
from hookagent.sources.jira import find_repo
from tests.helpers import FIXTURES


def created(description: object) -> dict[str, object]:
    return {
        "webhookEvent": "jira:issue_created",
        "issue": {
            "key": "OPS-7",
            "self": "https://acme.atlassian.net/rest/api/2/issue/7",
            "fields": {"summary": "Broken", "description": description},
        },
    }


def parse_task(payload: object, *, default_repo: str | None) -> NewTask:
    """``parse_jira`` for a payload that must start a task, not carry a command."""
    parsed = parse_jira(payload, default_repo=default_repo)
    assert isinstance(parsed, NewTask), parsed
    return parsed


def test_fixture_issue_created() -> None:
    payload = json.loads((FIXTURES / "jira-issue-created.json").read_text())
    task = parse_task(payload, default_repo=None)
    assert task.repository == "acme/payments-api"
    assert task.title == "PAY-231: Checkout fails when coupon has no amount"
    assert task.url == "https://acme.atlassian.net/browse/PAY-231"
    assert "Priority: High" in task.prompt and "LEGACY10" in task.prompt


def test_github_url_in_description() -> None:
    task = parse_task(created("See https://github.com/acme/web-app/issues/3"), default_repo=None)
    assert task.repository == "acme/web-app"


def test_adf_description() -> None:
    adf = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [{"type": "text", "text": "Repository: acme/adf-repo"}],
            },
            {"type": "paragraph", "content": [{"type": "text", "text": "It crashes."}]},
        ],
    }
    task = parse_task(created(adf), default_repo=None)
    assert task.repository == "acme/adf-repo"
    assert "It crashes." in task.prompt


def test_no_repository_anywhere_is_a_clear_error() -> None:
    with pytest.raises(PayloadError, match="Repository: owner/name"):
        parse_jira(created("nothing here"), default_repo=None)
    assert parse_task(created(None), default_repo="acme/d").repository == "acme/d"


def test_other_events_start_nothing() -> None:
    with pytest.raises(Ignored):
        parse_jira({"webhookEvent": "jira:issue_deleted"}, default_repo="acme/d")
    updated = json.loads((FIXTURES / "jira-issue-updated.json").read_text())
    with pytest.raises(Ignored):
        parse_jira(updated, default_repo=None, approve_status="Done")


def test_comment_is_a_command() -> None:
    payload = json.loads((FIXTURES / "jira-comment-created.json").read_text())
    command = parse_jira(payload, default_repo=None)
    assert isinstance(command, Command)
    assert (command.ref, command.verb, command.text) == (
        "PAY-231",
        Verb.REVISE,
        "also cover coupons with a zero rate",
    )
    assert command.actor == "Lee Lead"
    # Cloud hides this author's e-mail: the account id is all an approver list can name.
    assert command.actor_names == ("5b10ac8d82e05b22cc7d4ef6",)
    # Votes count per account: a display name can change between two comments.
    assert command.voter == "jira:5b10ac8d82e05b22cc7d4ef6"


def comment_by(author: dict[str, str]) -> Command:
    """The fixture comment, written by ``author`` (a ``comment.author`` object)."""
    payload = json.loads((FIXTURES / "jira-comment-created.json").read_text())
    payload["comment"]["author"] = author
    command = parse_jira(payload, default_repo=None)
    assert isinstance(command, Command)
    return command


def test_a_display_name_is_never_an_approver_name() -> None:
    """Anyone may set their display name to an approver's name, or to their account id."""
    command = comment_by({"accountId": "557058:mallory", "displayName": "5b10ac8d82e05b22cc7d4ef6"})
    assert command.actor_names == ("557058:mallory",)
    assert command.actor == "5b10ac8d82e05b22cc7d4ef6"  # still how logs name them
    assert command.voter == "jira:557058:mallory"
    assert comment_by({"displayName": "Lee Lead"}).actor_names == ()


def test_cloud_email_and_data_center_usernames_are_approver_names() -> None:
    cloud = comment_by(
        {"accountId": "5b10", "emailAddress": "lee@acme.test", "displayName": "Lee Lead"}
    )
    assert cloud.actor_names == ("5b10", "lee@acme.test")
    # Data Center: the username and the user key, but not the e-mail (editable, not unique).
    server = comment_by(
        {"name": "lee", "key": "JIRAUSER10100", "emailAddress": "x@acme.test", "displayName": "L"}
    )
    assert server.actor_names == ("lee", "JIRAUSER10100")
    assert (server.actor, server.voter) == ("L", "jira:JIRAUSER10100")


def test_transition_to_approved_is_an_approval() -> None:
    payload = json.loads((FIXTURES / "jira-issue-updated.json").read_text())
    command = parse_jira(payload, default_repo=None)
    assert isinstance(command, Command) and command.verb is Verb.APPROVE
    assert command.text == "moved to Approved"
    assert (command.actor, command.actor_names) == ("Lee Lead", ("5b10ac8d82e05b22cc7d4ef6",))


def test_comments_follow_the_description_and_labels_are_kept() -> None:
    payload = json.loads((FIXTURES / "jira-issue-created.json").read_text())
    adf = {
        "type": "doc",
        "content": [
            {
                "type": "paragraph",
                "content": [{"type": "text", "text": "Still failing on EUR"}],
            }
        ],
    }
    payload["issue"]["fields"]["comment"] = {"comments": [
        {"author": {"displayName": "Ana"}, "created": "2025-01-01T10:00:00.000+0000", "body": adf},
        {"author": {"displayName": "hookagent"}, "created": "2025-01-01T10:05:00.000+0000",
         "body": "plan posted\n_hookagent:task-1-abc_"},
        {"author": {"displayName": "Bo"}, "created": "2025-01-01T11:00:00.000+0000",
         "body": "Seen in prod too"},
    ]}  # fmt: skip
    task = parse_jira(payload, default_repo=None)
    assert isinstance(task, NewTask)
    assert task.labels == ["AI-Fix", "checkout"]
    assert task.prompt.endswith(
        "Comments, oldest first:\n\n"
        "--- Ana at 2025-01-01T10:00:00.000+0000:\nStill failing on EUR\n\n"
        "--- Bo at 2025-01-01T11:00:00.000+0000:\nSeen in prod too"
    )


HOSTILE_KEYS = [
    "X-1/../../../rest/api/2/issue/SEC-7",  # steered the REST path to another issue
    "PAY-1?expand=changelog",
    "PAY-1#x",
    "pay-1",
    "PAY-\u0661",  # ARABIC-INDIC DIGIT ONE, which \d takes without re.ASCII
    "PAY",
    "-1",
]


@pytest.mark.parametrize("key", HOSTILE_KEYS)
@pytest.mark.parametrize("fixture", ["issue-created", "comment-created", "issue-updated"])
def test_a_key_that_is_not_a_jira_key_is_refused(fixture: str, key: str) -> None:
    payload = json.loads((FIXTURES / f"jira-{fixture}.json").read_text())
    payload["issue"]["key"] = key
    with pytest.raises(PayloadError, match="is not a key like PAY-231"):
        parse_jira(payload, default_repo="acme/api", approve_status="Approved")


async def test_a_hostile_key_is_a_422_at_intake(client: httpx.AsyncClient) -> None:
    payload = json.loads((FIXTURES / "jira-issue-created.json").read_text())
    payload["issue"]["key"] = HOSTILE_KEYS[0]
    answer = await client.post("/webhooks/jira", json=payload)
    assert answer.status_code == 422, answer.text
    assert answer.json() == {
        "error": "invalid_payload",
        "detail": "Jira issue key 'X-1/../../../rest/api/2/issue/SEC-7' is not a key like "
        "PAY-231 (capital letters, digits or _, a hyphen, a number)",
    }
    listed = (await client.get("/tasks/")).json()
    assert listed["tasks"] == [], listed


@pytest.mark.parametrize(
    "line", ["a/b/../../c", "acme/-oProxyCommand=x", "acme/x y", "acme/.", "-o/x"]
)
async def test_a_repository_line_that_is_no_repository_is_a_422_naming_it(
    client: httpx.AsyncClient, line: str
) -> None:
    """The whole value is checked: it used to be cut to ``a/b`` or ``acme/-oProxyCommand``."""
    payload = json.loads((FIXTURES / "jira-issue-created.json").read_text())
    payload["issue"]["fields"]["description"] = f"Checkout fails.\nRepository: {line}\nThanks"
    answer = await client.post("/webhooks/jira", json=payload)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == f"repository {line!r} is not of the form owner/name"
    assert (await client.get("/tasks/")).json()["tasks"] == []


def test_a_repository_line_keeps_its_value_whole() -> None:
    assert find_repo("Repository: acme/payments-api.git  \nmore") == "acme/payments-api"
    assert find_repo("repo: acme/x y") == "acme/x y"
    assert find_repo("see https://github.com/acme/api/issues/3") == "acme/api"

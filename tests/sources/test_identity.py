"""What each parser puts on a Command: a voter the person cannot change, the source's own
comment id, and when the comment was written."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from hookagent.errors import PayloadError
from hookagent.sources import Command, parse_github, parse_gitlab, parse_jira, parse_linear
from hookagent.sources.base import event_key, moment
from tests.helpers import FIXTURES

T = datetime(2026, 12, 4, 20, 0, 1, tzinfo=UTC).timestamp()


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def command(parsed: object) -> Command:
    assert isinstance(parsed, Command)
    return parsed


@pytest.mark.parametrize(
    "written",
    [
        "2026-12-04T20:00:01Z",  # GitHub
        "2026-12-04 20:00:01 UTC",  # GitLab, older
        "2026-12-04T20:00:01.000Z",  # Linear, GitLab
        "2026-12-04T21:00:01.000+0100",  # Jira
        "2026-12-04T20:00:01",  # no zone: UTC
        1796414401000,  # Jira's ``timestamp`` (ms)
    ],
)
def test_every_time_format_a_source_writes(written: object) -> None:
    assert moment(written, "t") == T


@pytest.mark.parametrize(
    "bad", ["yesterday", "2026-13-01T00:00:00Z", -1, 10**400, float("nan"), []]
)
def test_a_time_that_is_no_time_is_a_422(bad: object) -> None:
    with pytest.raises(PayloadError, match="t is not a time"):
        moment(bad, "t")


def test_absent_times_and_ids_are_none() -> None:
    assert moment(None, "t") is None and moment("", "t") is None
    assert event_key("comment", None) is None
    assert event_key("comment", "x" * 65) is None and event_key("comment", "a b") is None
    assert event_key("comment", 7781) == "comment:7781"


def test_github_votes_by_user_id_and_names_the_comment() -> None:
    payload = fixture("github-issue-comment.json")
    payload["comment"].update(
        user={"login": "Lee-Lead", "id": 4242, "type": "User"}, created_at="2026-12-04T20:00:01Z"
    )
    parsed = command(parse_github(payload, event="issue_comment", label="hookagent"))
    assert (parsed.voter, parsed.actor) == ("github:4242", "Lee-Lead")
    assert parsed.actor_names == ("Lee-Lead", "id:4242")
    assert (parsed.event_id, parsed.created_at) == ("comment:7781", T)
    # No id in the payload: the login, lower-cased, as before.
    payload["comment"]["user"] = {"login": "Lee-Lead", "type": "User"}
    assert command(parse_github(payload, event="issue_comment", label="x")).voter == (
        "github:lee-lead"
    )


def test_gitlab_votes_by_user_id_and_names_the_note() -> None:
    payload = fixture("gitlab-note-approve.json")
    parsed = command(parse_gitlab(payload, event="Note Hook", label="hookagent"))
    user = payload["user"]
    assert parsed.voter == f"gitlab:{user['id']}"
    assert parsed.actor_names == (user["username"], f"id:{user['id']}")
    assert parsed.event_id == f"note:{payload['object_attributes']['id']}"
    assert parsed.created_at == moment(payload["object_attributes"]["created_at"], "t")


def test_jira_comments_and_transitions_carry_their_own_ids_and_times() -> None:
    comment = command(parse_jira(fixture("jira-comment-created.json"), default_repo=None))
    assert comment.voter == "jira:5b10ac8d82e05b22cc7d4ef6"
    assert comment.event_id == "comment:20077"
    assert comment.created_at == moment("2026-11-25T04:08:20.789+0000", "t")
    moved = command(parse_jira(fixture("jira-issue-updated.json"), default_repo=None))
    assert (moved.event_id, moved.created_at) == ("changelog:30012", 1764043600.456)


def test_linear_comments_carry_their_creation_time() -> None:
    parsed = command(
        parse_linear(
            fixture("linear-comment-approve.json"), label="x", projects={}, default_repo=None
        )
    )
    assert parsed.voter == "linear:3b3b3b3b-0000-4000-8000-000000000033"
    assert parsed.created_at == moment("2026-11-26T09:20:01.500Z", "t")

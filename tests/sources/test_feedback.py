"""Review feedback parsed from GitHub and GitLab: reviews, inline comments, diff notes, mentions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hookagent.sources import Command, Feedback, Ignored, Verb, parse_github, parse_gitlab
from hookagent.sources.commands import parse_instruction
from tests.github_stub import GitHubStub
from tests.helpers import FIXTURES

GITLAB_REPO = "acme/platform/payments-api"


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:  # for its event builders: GitHub's payload shapes
        head, base = {"ref": "hookagent/task-1-ab"}, {"ref": "main"}
        stub.opened[41] = {"id": 41, "html_url": "https://github.com/acme/payments-api/pull/41",
                           "head": head, "base": base, "repo": "acme/payments-api"}  # fmt: skip
        yield stub


def parse(event: str, payload: dict[str, Any], bot: str | None = "hookagent-bot") -> Any:
    return parse_github(payload, event=event, label="hookagent", bot_login=bot)


def test_an_inline_comment_carries_its_place_and_hunk(github: GitHubStub) -> None:
    event = github.review_comment_event(41, 501, body="Rename `total`", line=3)
    found = parse("pull_request_review_comment", event)
    assert isinstance(found, Feedback)
    assert (found.ref, found.kind, found.feedback_id) == (
        "acme/payments-api!41", "inline", "review-comment:501"
    )  # fmt: skip
    assert (found.path, found.line, found.side, found.reply_to) == ("app.py", 3, "RIGHT", "501")
    assert found.diff_hunk and found.diff_hunk.startswith("@@ -1,2 +1,5 @@")
    assert found.actor_names == ("rev-alice", "id:6021")
    # A reply in a thread is answered under the thread's first comment.
    event["comment"]["in_reply_to_id"] = 480
    assert parse("pull_request_review_comment", event).reply_to == "480"


def test_a_review_counts_with_a_body_or_a_request_for_changes(github: GitHubStub) -> None:
    with pytest.raises(Ignored, match="without a body"):
        parse("pull_request_review", github.review_event(41, 880))
    said = parse("pull_request_review", github.review_event(41, 881, body="Looks off"))
    assert (said.kind, said.body, said.feedback_id) == ("review", "Looks off", "review:881")
    bare = parse("pull_request_review", github.review_event(41, 882, state="changes_requested"))
    assert bare.body == "(changes requested, no summary)"
    edited = github.review_event(41, 883, body="x") | {"action": "edited"}
    with pytest.raises(Ignored, match="not a new review"):
        parse("pull_request_review", edited)


def test_a_mention_with_free_text_on_the_pull_request_is_feedback(github: GitHubStub) -> None:
    found = parse("issue_comment", github.pr_comment_event(41, 9, "@hookagent add a docstring"))
    assert isinstance(found, Feedback)
    assert (found.ref, found.kind, found.body) == (
        "acme/payments-api!41",
        "comment",
        "add a docstring",
    )
    # A verb is still a command; ``review`` or ``fix-ci`` join the verb table the same way.
    command = parse("issue_comment", github.pr_comment_event(41, 10, "@hookagent status"))
    assert isinstance(command, Command) and command.verb is Verb.STATUS
    assert parse_instruction("@hookagent cancel now") == (Verb.CANCEL, "now", "cancel")
    assert parse_instruction("hey @hookagent: use a dict") == (None, "use a dict", "use")


@pytest.mark.parametrize(
    ("user", "body", "why"),
    [
        ({"login": "ci[bot]", "id": 1, "type": "Bot"}, "fix it", "by bots"),
        ({"login": "HookAgent-Bot", "id": 2, "type": "User"}, "fix it", "own review comment"),
        ({"login": "kim", "id": 3, "type": "User"}, "<!-- hookagent:task-1-ab -->", "marker"),
    ],
)
def test_never_bots_nor_hookagent_itself(
    github: GitHubStub, user: dict[str, Any], body: str, why: str
) -> None:
    event = github.review_comment_event(41, 700, body=body)
    event["comment"]["user"] = user
    with pytest.raises(Ignored, match=why):
        parse("pull_request_review_comment", event)


def gitlab_note(note: str, *, position: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / "gitlab-note-approve.json").read_text())
    attributes = payload["object_attributes"]
    attributes |= {"note": note, "noteable_type": "MergeRequest", "position": position}
    payload["merge_request"] = {"iid": 3, "id": 88300}
    payload.pop("issue", None)
    return payload


def test_a_gitlab_diff_note_is_inline_feedback_in_its_discussion() -> None:
    position = {"new_path": "app.py", "old_path": "app.py", "new_line": 2, "old_line": None}
    found = parse_gitlab(gitlab_note("Use a guard here", position=position),
                         event="Note Hook", label="hookagent")  # fmt: skip
    assert isinstance(found, Feedback)
    assert (found.ref, found.kind, found.path, found.line, found.side) == (
        f"{GITLAB_REPO}!3", "inline", "app.py", 2, "RIGHT"
    )  # fmt: skip
    assert found.reply_to == "3f1c0e7d9b2a4c6e8f0a1b2c3d4e5f60718293a4"
    assert found.actor_names == ("lee-lead", "id:7")


def test_a_gitlab_merge_request_note_needs_a_mention_or_a_position() -> None:
    with pytest.raises(Ignored, match="without @hookagent"):
        parse_gitlab(gitlab_note("nice"), event="Note Hook", label="hookagent")
    found = parse_gitlab(gitlab_note("@hookagent split this function"), event="Note Hook",
                         label="hookagent")  # fmt: skip
    assert isinstance(found, Feedback) and found.body == "split this function"
    command = parse_gitlab(gitlab_note("@hookagent status"), event="Note Hook", label="x")
    assert isinstance(command, Command) and command.ref == f"{GITLAB_REPO}!3"
    bot = gitlab_note("@hookagent do it")
    bot["user"]["bot"] = True
    with pytest.raises(Ignored, match="bots"):
        parse_gitlab(bot, event="Note Hook", label="hookagent")
    token_user = gitlab_note("@hookagent do it")
    token_user["user"]["username"] = "project_1207_bot_3f9a"
    with pytest.raises(Ignored, match="bots"):
        parse_gitlab(token_user, event="Note Hook", label="hookagent")

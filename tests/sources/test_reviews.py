"""Which deliveries ask for a review, and which go on to the source's own parser."""

from __future__ import annotations

from typing import Any

import pytest

from hookagent.sources import Ignored
from hookagent.sources.reviews import parse_github_review, parse_gitlab_review

REPO = {"full_name": "acme/api"}


def comment(body: str, *, pull: bool = True, user: dict[str, Any] | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"number": 7, "title": "Median"}
    if pull:
        issue["pull_request"] = {"url": "https://api.github.com/repos/acme/api/pulls/7"}
    author = user or {"login": "lee", "id": 5821, "type": "User"}
    return {"action": "created", "issue": issue, "repository": REPO,
            "comment": {"id": 91, "body": body, "user": author}}  # fmt: skip


def test_a_review_comment_on_a_pull_request_asks_with_its_text() -> None:
    review = parse_github_review(
        comment("LGTM? @hookagent review: the error paths"), event="issue_comment", bot_login=None
    )
    assert review is not None and not review.automatic
    assert (review.repository, review.number, review.text) == ("acme/api", 7, "the error paths")
    assert review.actor_names == ("lee", "id:5821") and review.event_id == "comment:91"


@pytest.mark.parametrize("body", ["@hookagent approve", "no mention", "@hookagent reviewed it"])
def test_other_comments_go_on_to_the_github_parser(body: str) -> None:
    assert parse_github_review(comment(body), event="issue_comment", bot_login=None) is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (comment("@hookagent review", pull=False), "for pull requests"),
        (comment("@hookagent review", user={"login": "ci[bot]", "type": "Bot"}), "bots"),
        (comment("@hookagent review", user={"login": "HookAgent-Bot"}), "own comment"),
    ],
)
def test_review_comments_that_never_ask(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(Ignored, match=reason):
        parse_github_review(payload, event="issue_comment", bot_login="hookagent-bot")


def pull(action: str, head: str = "feature", login: str = "pat") -> dict[str, Any]:
    user = {"login": login}
    return {"action": action, "repository": REPO, "sender": user,
            "pull_request": {"id": 1, "number": 7, "title": "T", "user": user,
                             "head": {"ref": head, "sha": "abc"}}}  # fmt: skip


def test_pull_requests_opened_or_pushed_ask_automatically() -> None:
    for action in ("opened", "reopened", "synchronize"):
        review = parse_github_review(pull(action), event="pull_request", bot_login=None)
        assert review is not None and review.automatic and review.event_id == "pr-review:1:abc"
    for action in ("closed", "edited", "labeled"):
        assert parse_github_review(pull(action), event="pull_request", bot_login=None) is None
    with pytest.raises(Ignored, match="own pull request"):
        own = pull("opened", head="hookagent/task-1764040000123-3f9a1c2b7d4e")
        parse_github_review(own, event="pull_request", bot_login=None)


def test_a_strangers_pull_request_is_not_reviewed_unasked() -> None:
    """On a public repository anyone may open pull requests, and each review is a paid run."""
    for association in ("NONE", "FIRST_TIMER", "FIRST_TIME_CONTRIBUTOR"):
        payload = pull("opened")
        payload["pull_request"]["author_association"] = association
        with pytest.raises(Ignored, match="author"):
            parse_github_review(payload, event="pull_request", bot_login=None)
    for association in ("MEMBER", "COLLABORATOR", "CONTRIBUTOR", "OWNER"):
        payload = pull("synchronize")
        payload["pull_request"]["author_association"] = association
        assert parse_github_review(payload, event="pull_request", bot_login=None) is not None


def note(text: str, kind: str = "MergeRequest") -> dict[str, Any]:
    return {"object_kind": "note", "project": {"path_with_namespace": "acme/sub/api"},
            "user": {"id": 4, "username": "lee"}, "merge_request": {"iid": 3, "title": "T"},
            "object_attributes": {"id": 12, "note": text, "noteable_type": kind}}  # fmt: skip


def test_gitlab_review_notes_and_merge_request_pushes() -> None:
    review = parse_gitlab_review(note("@hookagent review"), event="Note Hook", bot_username=None)
    assert review is not None and (review.repository, review.number) == ("acme/sub/api", 3)
    assert (
        parse_gitlab_review(note("@hookagent approve"), event="Note Hook", bot_username=None)
        is None
    )
    with pytest.raises(Ignored, match="merge requests"):
        parse_gitlab_review(
            note("@hookagent review", "Issue"), event="Note Hook", bot_username=None
        )
    project = {"path_with_namespace": "acme/api"}
    hook: dict[str, Any] = {"object_kind": "merge_request", "project": project,
            "user": {"username": "pat"},
            "object_attributes": {"id": 5, "iid": 3, "action": "update", "source_branch": "f",
                                  "last_commit": {"id": "abc"}}}  # fmt: skip
    # An update without new commits (``oldrev``) is a title or label change: no review.
    assert parse_gitlab_review(hook, event="Merge Request Hook", bot_username=None) is None
    hook["object_attributes"]["oldrev"] = "def"
    pushed = parse_gitlab_review(hook, event="Merge Request Hook", bot_username=None)
    assert pushed is not None and pushed.automatic and pushed.event_id == "mr-review:5:abc"

"""Review requests: ``@hookagent review`` on a pull or merge request, or one opened or pushed to.

Parsed before the source's own parser (sources/table.py): a delivery that asks for no review
(None here) goes on to it. A comment asks when the word after its first ``@hookagent``
mention is ``review``; the rest of the comment is what to look at. A pull request opened,
reopened or pushed to (GitLab: a merge request opened, reopened or updated with new commits)
asks too, and counts only where the repository's policy says ``review_prs = true``
(services/reviews.py decides). hookagent's own comments, bots' comments and hookagent's own
pull requests never ask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hookagent.sources.base import Ignored, event_key, moment, obj, require_object, text, user_id
from hookagent.sources.commands import is_own_comment, mentioned

REVIEW_WORD = "review"
# The branches hookagent pushes: a pull request from one is its own, never reviewed by it.
OWN_BRANCH = re.compile(r"^hookagent/task-[0-9]+-[0-9a-f]+$")
_PULL_ACTIONS = frozenset({"opened", "reopened", "synchronize"})
_MERGE_ACTIONS = frozenset({"open", "reopen", "update"})


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """A review of request ``number`` of ``repository`` on forge ``source``, asked for by ``actor``.

    ``automatic``: the request was opened or pushed to (policy ``review_prs``), not asked for
    in a comment. ``event_id``: the comment's own id, or the request and its head commit, so
    a delivery sent again (under any header) asks for nothing new. ``actor_names``: the
    identities a ``reviewers`` or approver list may name (login, ``id:<user id>``).
    """

    source: str
    repository: str
    number: int
    title: str
    actor: str
    actor_names: tuple[str, ...]
    event_id: str | None
    automatic: bool = False
    text: str = ""
    url: str | None = None
    created_at: float | None = None


def parse_github_review(
    payload: Any, *, event: str | None, bot_login: str | None
) -> ReviewRequest | None:
    """The review a GitHub ``issue_comment`` or ``pull_request`` delivery asks for, if any."""
    body = require_object(payload)
    repo = text(obj(body.get("repository")).get("full_name"))
    if event == "issue_comment":
        return _github_comment(body, repo, bot_login)
    if event == "pull_request" and text(body.get("action")) in _PULL_ACTIONS:
        return _github_pull(body, repo, bot_login)
    return None


def _github_comment(body: dict[str, Any], repo: str, bot_login: str | None) -> ReviewRequest | None:
    issue, comment = obj(body.get("issue")), obj(body.get("comment"))
    said = mentioned(text(comment.get("body")))
    if text(body.get("action")) != "created" or said is None or said[0] != REVIEW_WORD:
        return None
    if not issue.get("pull_request"):
        raise Ignored("@hookagent review is for pull requests; this is an issue")
    user = obj(comment.get("user"))
    login = text(user.get("login"))
    if text(user.get("type")) == "Bot":
        raise Ignored("comments by bots are not commands")
    if bot_login and login.lower() == bot_login.strip().lower():
        raise Ignored("hookagent's own comment (HOOKAGENT_GITHUB_BOT_LOGIN)")
    if is_own_comment(text(comment.get("body"))):
        raise Ignored("hookagent's own comment (it carries the hookagent marker)")
    number = user_id(user.get("id"))
    return ReviewRequest(
        source="github",
        repository=repo,
        number=_number(issue.get("number")),
        title=text(issue.get("title")),
        actor=login,
        actor_names=(login, f"id:{number}") if number else (login,),
        event_id=event_key("comment", comment.get("id")),
        text=said[1],
        url=text(issue.get("html_url")) or None,
        created_at=moment(comment.get("created_at"), "comment.created_at"),
    )


# GitHub's author_association values of people with no standing in the repository.
STRANGERS = frozenset({"NONE", "FIRST_TIMER", "FIRST_TIME_CONTRIBUTOR", "MANNEQUIN"})


def _github_pull(body: dict[str, Any], repo: str, bot_login: str | None) -> ReviewRequest:
    pull = obj(body.get("pull_request"))
    author = text(obj(pull.get("user")).get("login"))
    head = obj(pull.get("head"))
    if bot_login and author.lower() == bot_login.strip().lower():
        raise Ignored("hookagent's own pull request (HOOKAGENT_GITHUB_BOT_LOGIN)")
    if OWN_BRANCH.match(text(head.get("ref"))):
        raise Ignored("hookagent's own pull request (its branch)")
    association = text(pull.get("author_association")).upper()
    if association in STRANGERS:
        # On a public repository anyone may open pull requests: each review is an agent
        # run, so a stranger's are not reviewed unasked (an approver's `@hookagent review` is).
        raise Ignored(f"pull request by a {association.lower()} author (review_prs)")
    sender = obj(body.get("sender"))
    login = text(sender.get("login")) or author
    sha = text(head.get("sha"))
    return ReviewRequest(
        source="github",
        repository=repo,
        number=_number(pull.get("number")),
        title=text(pull.get("title")),
        actor=login,
        actor_names=(login,),
        event_id=event_key("pr-review", f"{text(pull.get('id'))}:{sha}"),
        automatic=True,
        url=text(pull.get("html_url")) or None,
    )


def parse_gitlab_review(
    payload: Any, *, event: str | None, bot_username: str | None
) -> ReviewRequest | None:
    """The review a GitLab Note Hook (on a merge request) or Merge Request Hook asks for."""
    body = require_object(payload)
    kind = text(body.get("object_kind"))
    repo = text(obj(body.get("project")).get("path_with_namespace"))
    if event in {"Note Hook", "Confidential Note Hook"} and kind == "note":
        return _gitlab_note(body, repo, bot_username)
    if event == "Merge Request Hook" and kind == "merge_request":
        return _gitlab_merge_request(body, repo, bot_username)
    return None


def _gitlab_note(body: dict[str, Any], repo: str, bot_username: str | None) -> ReviewRequest | None:
    note = obj(body.get("object_attributes"))
    said = mentioned(text(note.get("note")))
    if said is None or said[0] != REVIEW_WORD or note.get("system") is True:
        return None
    if text(note.get("action")) not in {"", "create"}:
        return None
    if text(note.get("noteable_type")) != "MergeRequest":
        raise Ignored("@hookagent review is for merge requests; this is not one")
    user = obj(body.get("user"))
    author = text(user.get("username"))
    if bot_username and author.lower() == bot_username.strip().lower():
        raise Ignored("hookagent's own note (HOOKAGENT_GITLAB_BOT_USERNAME)")
    if is_own_comment(text(note.get("note"))):
        raise Ignored("hookagent's own note (it carries the hookagent marker)")
    request = obj(body.get("merge_request"))
    number = user_id(user.get("id"))
    return ReviewRequest(
        source="gitlab",
        repository=repo,
        number=_number(request.get("iid")),
        title=text(request.get("title")),
        actor=author,
        actor_names=(author, f"id:{number}") if number else (author,),
        event_id=event_key("note", note.get("id")),
        text=said[1],
        url=text(note.get("url")) or None,
        created_at=moment(note.get("created_at"), "object_attributes.created_at"),
    )


def _gitlab_merge_request(
    body: dict[str, Any], repo: str, bot_username: str | None
) -> ReviewRequest | None:
    request = obj(body.get("object_attributes"))
    action = text(request.get("action"))
    # An update without ``oldrev`` changed the title, labels or the like: no new code.
    if action not in _MERGE_ACTIONS or (action == "update" and not request.get("oldrev")):
        return None
    user = obj(body.get("user"))
    who = text(user.get("username"))
    if bot_username and who.lower() == bot_username.strip().lower():
        raise Ignored("hookagent's own merge request (HOOKAGENT_GITLAB_BOT_USERNAME)")
    if OWN_BRANCH.match(text(request.get("source_branch"))):
        raise Ignored("hookagent's own merge request (its branch)")
    sha = text(obj(request.get("last_commit")).get("id"))
    return ReviewRequest(
        source="gitlab",
        repository=repo,
        number=_number(request.get("iid")),
        title=text(request.get("title")),
        actor=who,
        actor_names=(who,),
        event_id=event_key("mr-review", f"{text(request.get('id'))}:{sha}"),
        automatic=True,
        url=text(request.get("url")) or None,
    )


def _number(value: Any) -> int:
    """A request's number; a delivery without a usable one asks for nothing."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise Ignored("the delivery names no pull or merge request number")

"""Review feedback on a change request hookagent opened: reviews, inline comments, mentions.

GitHub: ``pull_request_review`` submitted (with a body, or requesting changes),
``pull_request_review_comment`` created (an inline comment: path, line, side, diff hunk), and
an ``issue_comment`` on the pull request whose ``@hookagent`` mention is followed by free
text (github.py). GitLab: a Note Hook on a merge request, a diff note (``position``) or a
note mentioning ``@hookagent`` (gitlab.py). Never hookagent's own comments, nor bots'.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hookagent.sources.base import Ignored, event_key, moment, obj, text, user_id
from hookagent.sources.commands import is_own_comment

# What one item keeps of a comment and its diff hunk: a prompt holds every item of a round.
BODY_MAX_CHARS = 8_000
HUNK_MAX_CHARS = 4_000


class Kind(StrEnum):
    """What a feedback item is (its ``kind``)."""

    REVIEW = "review"
    INLINE = "inline"
    COMMENT = "comment"


@dataclass(frozen=True, slots=True)
class Feedback:
    """One piece of review feedback on the change request ``ref`` (``owner/repo!41``).

    ``feedback_id``: the source's own id of the comment or review (``review-comment:88``), so
    a delivery retried or replayed under a new header adds nothing. ``reply_to``: what a
    reply goes under (GitHub: the thread's first review comment; GitLab: the discussion).
    """

    source: str
    ref: str
    kind: Kind
    body: str
    actor: str
    actor_names: tuple[str, ...]
    feedback_id: str | None
    reply_to: str | None = None
    path: str | None = None
    line: int | None = None
    side: str | None = None
    diff_hunk: str | None = None
    created_at: float | None = None

    def item(self) -> dict[str, Any]:
        """The stored item: what a round's prompt and replies need, nothing more."""
        return {
            "id": self.feedback_id,
            "kind": self.kind.value,
            "author": self.actor,
            "body": self.body[:BODY_MAX_CHARS],
            "reply_to": self.reply_to,
            "path": self.path,
            "line": self.line,
            "side": self.side,
            "diff_hunk": (self.diff_hunk or "")[-HUNK_MAX_CHARS:] or None,
        }


def check_author(user: dict[str, Any], body: str, bot_login: str | None, what: str) -> None:
    """Ignored unless a person other than hookagent wrote it."""
    if text(user.get("type")) == "Bot" or user.get("bot") is True:
        raise Ignored(f"{what} by bots are not feedback")
    login = text(user.get("login")) or text(user.get("username"))
    if bot_login and login.lower() == bot_login.strip().lower():
        raise Ignored(f"hookagent's own {what}")
    if is_own_comment(body):
        raise Ignored(f"hookagent's own {what} (it carries the hookagent marker)")


def names(login: str, user: dict[str, Any]) -> tuple[str, ...]:
    """The identities an approver or reviewer list may name: the login and ``id:<number>``."""
    number = user_id(user.get("id"))
    return (login, f"id:{number}") if number else (login,)


def github_review(body: dict[str, Any], repo: str, bot_login: str | None) -> Feedback:
    """``pull_request_review`` submitted: its body, or a bare request for changes."""
    if text(body.get("action")) != "submitted":
        raise Ignored(f"review {text(body.get('action')) or '?'} is not a new review")
    review, pull = obj(body.get("review")), obj(body.get("pull_request"))
    user = obj(review.get("user"))
    said = text(review.get("body")).strip()
    state = text(review.get("state")).lower()
    if not said and state != "changes_requested":
        raise Ignored("a review without a body that requests no changes (its comments come apart)")
    check_author(user, said, bot_login, "review")
    login = text(user.get("login"))
    return Feedback(
        source="github",
        ref=f"{repo}!{text(pull.get('number'))}",
        kind=Kind.REVIEW,
        body=said or "(changes requested, no summary)",
        actor=login,
        actor_names=names(login, user),
        feedback_id=event_key("review", review.get("id")),
        created_at=moment(review.get("submitted_at"), "review.submitted_at"),
    )


def github_review_comment(body: dict[str, Any], repo: str, bot_login: str | None) -> Feedback:
    """``pull_request_review_comment`` created: an inline comment on the diff."""
    if text(body.get("action")) != "created":
        raise Ignored(f"review comment {text(body.get('action')) or '?'} is not a new comment")
    comment, pull = obj(body.get("comment")), obj(body.get("pull_request"))
    user = obj(comment.get("user"))
    said = text(comment.get("body"))
    check_author(user, said, bot_login, "review comment")
    login = text(user.get("login"))
    line = comment.get("line") if comment.get("line") is not None else comment.get("original_line")
    # Replies go under the thread's first comment: GitHub takes no reply to a reply.
    thread = comment.get("in_reply_to_id") or comment.get("id")
    return Feedback(
        source="github",
        ref=f"{repo}!{text(pull.get('number'))}",
        kind=Kind.INLINE,
        body=said,
        actor=login,
        actor_names=names(login, user),
        feedback_id=event_key("review-comment", comment.get("id")),
        reply_to=text(thread) or None,
        path=text(comment.get("path")) or None,
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
        side=text(comment.get("side")) or None,
        diff_hunk=text(comment.get("diff_hunk")) or None,
        created_at=moment(comment.get("created_at"), "comment.created_at"),
    )


def github_mention(
    body: dict[str, Any], repo: str, instruction: str, user: dict[str, Any]
) -> Feedback:
    """An ``issue_comment`` on the pull request: ``@hookagent`` and free text."""
    comment, issue = obj(body.get("comment")), obj(body.get("issue"))
    login = text(user.get("login"))
    return Feedback(
        source="github",
        ref=f"{repo}!{text(issue.get('number'))}",
        kind=Kind.COMMENT,
        body=instruction,
        actor=login,
        actor_names=names(login, user),
        feedback_id=event_key("comment", comment.get("id")),
        created_at=moment(comment.get("created_at"), "comment.created_at"),
    )


def gitlab_note(body: dict[str, Any], ref: str, instruction: str | None) -> Feedback:
    """A note on a merge request: a diff note (with ``position``), or a mention's text."""
    note, user = obj(body.get("object_attributes")), obj(body.get("user"))
    position = obj(note.get("position"))
    said = text(note.get("note"))
    if not position and not instruction:
        raise Ignored("a merge request note without @hookagent or a diff position")
    login = text(user.get("username"))
    new_line, old_line = position.get("new_line"), position.get("old_line")
    line = new_line if isinstance(new_line, int) else old_line
    return Feedback(
        source="gitlab",
        ref=ref,
        kind=Kind.INLINE if position else Kind.COMMENT,
        body=said if position else (instruction or ""),
        actor=login,
        actor_names=names(login, user),
        feedback_id=event_key("note", note.get("id")),
        reply_to=text(note.get("discussion_id")) or None,
        path=(text(position.get("new_path")) or text(position.get("old_path"))) or None,
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
        side=("RIGHT" if isinstance(new_line, int) else "LEFT") if position else None,
        created_at=moment(note.get("created_at"), "object_attributes.created_at"),
    )

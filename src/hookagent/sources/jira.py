"""Jira webhooks: ``jira:issue_created`` starts a task."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from hookagent.briefing.discussion import Comment, render_thread
from hookagent.errors import PayloadError, quoted
from hookagent.models import NewTask
from hookagent.sources.base import (
    Ignored,
    array,
    clip_prompt,
    event_key,
    field,
    moment,
    obj,
    pick_repo,
    require_object,
    text,
)
from hookagent.sources.commands import Command, Verb, is_own_comment, parse_mention

# Leading blanks, not ``\s*``: a ``\s*`` crossing newlines made a description of blank
# lines quadratic (100,000 newlines took minutes); ``^`` already tries each line.
# The value is the rest of the line, checked whole by the intake: a pattern that stopped at
# the first odd character made ``a/b/../../c`` a task for ``a/b``.
_REPO_LINE = re.compile(
    r"^[^\S\n]*repo(?:sitory)?[^\S\n]*:[^\S\n]*([^\n]*?)[^\S\n]*$", re.IGNORECASE | re.MULTILINE
)
_GITHUB_URL = re.compile(r"github\.com[/:]([\w.-]+)/([\w.-]+?)(?:\.git)?(?:[/#?\s)\]]|$)")
# A Jira issue key: the project key, a hyphen, the number. It goes into the REST API's paths
# (notify/jira.py) and the browse link, so a key like ``X-1/../../issue/SEC-7`` is refused;
# ASCII digits only, and fullmatch: ``$`` alone would let a trailing newline through.
ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-\d+$", re.ASCII)


def parse_jira(
    payload: Any,
    *,
    default_repo: str | None,
    approve_status: str = "Approved",
    reject_status: str = "Rejected",
) -> NewTask | Command:
    """A task from ``jira:issue_created``; a command from a comment or a status transition."""
    body = require_object(payload)
    event = text(body.get("webhookEvent"))
    if event == "comment_created":
        return _comment(body)
    if event == "jira:issue_updated":
        return _transition(body, approve_status, reject_status)
    if event != "jira:issue_created":
        raise Ignored(f"Jira event {event or '(none)'!r} does not start tasks")
    issue = obj(body.get("issue"))
    fields = obj(issue.get("fields"))
    key = issue_key(text(issue.get("key")), required=False)
    summary = text(fields.get("summary")) or key or "Jira issue"
    description = adf_text(fields.get("description"))
    repo = pick_repo(
        find_repo(description), default_repo, "a 'Repository: owner/name' line to the description"
    )
    url = browse_url(text(issue.get("self")), key)
    labels = [text(x) for x in array(fields.get("labels")) if text(x)]
    lines = [
        f"Jira issue {key}: {summary}",
        field("Type", text(obj(fields.get("issuetype")).get("name"))),
        field("Priority", text(obj(fields.get("priority")).get("name"))),
        field("Labels", ", ".join(labels)),
        field("Reporter", text(obj(body.get("user")).get("displayName"))),
        f"Link: {url}" if url else "",
        "",
        description,
    ]
    # The comments after the (clipped) description, so a long description cannot push them out.
    thread = render_thread(_comments(fields))
    prompt = clip_prompt("\n".join(lines).strip()) + (f"\n\n{thread}" if thread else "")
    return NewTask(
        source="jira",
        repository=repo,
        title=f"{key}: {summary}" if key else summary,
        prompt=prompt,
        external_id=key or None,
        url=url,
        labels=labels,
    )


def _comments(fields: dict[str, Any]) -> list[Comment]:
    """The issue's comments in the payload (``fields.comment.comments``), ADF as text."""
    found = []
    for item in array(obj(fields.get("comment")).get("comments")):
        item = obj(item)
        body = adf_text(item.get("body"))
        if not body or is_own_comment(body):
            continue
        author = obj(item.get("author"))
        name = text(author.get("displayName")) or text(author.get("accountId"))
        found.append(Comment(name, text(item.get("created")), body))
    return found


def _comment(body: dict[str, Any]) -> Command:
    comment = obj(body.get("comment"))
    if is_own_comment(adf_text(comment.get("body"))):
        raise Ignored("hookagent's own comment (it carries the hookagent marker)")
    parsed = parse_mention(adf_text(comment.get("body")))
    if parsed is None:
        raise Ignored("no @hookagent command in the comment")
    verb, rest = parsed
    author = obj(comment.get("author"))
    return _command(
        body,
        verb,
        rest,
        author,
        event_id=event_key("comment", comment.get("id")),
        created_at=moment(comment.get("created"), "comment.created"),
    )


def _transition(body: dict[str, Any], approve_status: str, reject_status: str) -> Command:
    changelog = obj(body.get("changelog"))
    for item in array(changelog.get("items")):
        item = obj(item)
        if text(item.get("field")).lower() != "status":
            continue
        target = text(item.get("toString"))
        verbs = {approve_status.lower(): Verb.APPROVE, reject_status.lower(): Verb.REJECT}
        if (verb := verbs.get(target.lower())) is not None:
            return _command(
                body,
                verb,
                f"moved to {target}",
                obj(body.get("user")),
                event_id=event_key("changelog", changelog.get("id")),
                # The event's own time (ms): the transition was made then.
                created_at=moment(body.get("timestamp"), "timestamp"),
            )
    raise Ignored("no status transition that approves or rejects")


def _command(
    body: dict[str, Any],
    verb: Verb,
    rest: str,
    person: dict[str, Any],
    *,
    event_id: str | None,
    created_at: float | None,
) -> Command:
    key = issue_key(text(obj(body.get("issue")).get("key")), required=True)
    account = text(person.get("accountId"))
    display = text(person.get("displayName"))
    return Command(
        source="jira",
        ref=key,
        verb=verb,
        text=rest,
        actor=display or account or text(person.get("name")) or "unknown",
        actor_names=approver_names(person),
        # A display name can change between two votes; the account id (or user key) cannot.
        actor_id=account or text(person.get("key")) or text(person.get("name")) or "unknown",
        event_id=event_id,
        created_at=created_at,
    )


def issue_key(key: str, *, required: bool) -> str:
    """``key`` if it is a Jira issue key (``PAY-231``); a :class:`PayloadError` (422) if not."""
    if not key:
        if required:
            raise PayloadError("Jira payload has no issue key")
        return key
    if ISSUE_KEY.fullmatch(key) is None:
        raise PayloadError(
            f"Jira issue key {quoted(key, 40)} is not a key like PAY-231 "
            "(capital letters, digits or _, a hyphen, a number)"
        )
    return key


def approver_names(person: dict[str, Any]) -> tuple[str, ...]:
    """What ``HOOKAGENT_JIRA_APPROVERS`` may name of a Jira user: never the display name.

    Anyone can set their ``displayName`` to an approver's. Jira Cloud sends the
    ``accountId`` and, unless the profile hides it, the Atlassian account's
    ``emailAddress``. Jira Data Center sends the username (``name``) and the user key
    (``key``), both unique; its ``emailAddress`` is not (a user may edit it, and Jira does
    not enforce uniqueness), so an address counts only beside an ``accountId``.
    """
    account = text(person.get("accountId"))
    email = text(person.get("emailAddress")) if account else ""
    found = (account, email, text(person.get("name")), text(person.get("key")))
    return tuple(dict.fromkeys(n for n in found if n))


def find_repo(description: str) -> str | None:
    """``Repository: owner/name`` line, else the first GitHub URL."""
    line = _REPO_LINE.search(description)
    if line and line.group(1):
        return line.group(1).removesuffix(".git")
    link = _GITHUB_URL.search(description)
    if link:
        return f"{link.group(1)}/{link.group(2)}"
    return None


def adf_text(value: Any) -> str:
    """Plain text of a description given as text or as Atlassian Document Format."""
    if isinstance(value, str):
        return value.strip()
    parts: list[str] = []
    _walk_adf(value, parts)
    return "".join(parts).strip()


def _walk_adf(node: Any, out: list[str]) -> None:
    if isinstance(node, list):
        for child in node:
            _walk_adf(child, out)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "text":
        out.append(text(node.get("text")) if node.get("text") != " " else " ")
        for mark in array(node.get("marks")):
            href = obj(obj(mark).get("attrs")).get("href")
            if isinstance(href, str):
                out.append(f" ({href})")
    if node.get("type") == "hardBreak":
        out.append("\n")
    _walk_adf(node.get("content"), out)
    # A tuple, not a set: the payload's "type" may be a list or an object (unhashable).
    if node.get("type") in ("paragraph", "heading", "listItem", "codeBlock"):
        out.append("\n")


def browse_url(self_url: str, key: str) -> str | None:
    """``https://host/browse/KEY`` from the issue's REST ``self`` link."""
    if not self_url or not key:
        return None
    try:
        parts = urlsplit(self_url)
    except ValueError:  # "http://[::1" and other links urlsplit refuses
        return None
    return f"{parts.scheme}://{parts.netloc}/browse/{key}" if parts.netloc else None

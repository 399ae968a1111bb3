"""Linear webhooks: a labelled issue starts a task; ``@hookagent`` comments command one.

``type: "Issue"`` created with the label, or updated so the label was added (the label's id
is in ``data.labelIds`` and not in ``updatedFrom.labelIds``). ``type: "Comment"`` created on
an issue: a command for the task of ``data.issueId``. Tasks are keyed by the issue's id (a
UUID), which both kinds carry and Linear's GraphQL ``commentCreate`` takes as ``issueId``.

Linear signs the raw body (``Linear-Signature``, hex HMAC-SHA256) and puts the send time in
the body (``webhookTimestamp``, ms): a delivery older than :data:`MAX_AGE_S` is refused, so a
captured one cannot be replayed later.
"""

from __future__ import annotations

import re
from typing import Any

from hookagent.errors import PayloadError, SignatureError
from hookagent.models import NewTask
from hookagent.sources.base import (
    Ignored,
    array,
    clip_prompt,
    field,
    moment,
    obj,
    pick_repo,
    require_object,
    text,
)
from hookagent.sources.commands import Command, is_own_comment, parse_mention

# How far ``webhookTimestamp`` may be from now, either way (Linear's docs advise a minute).
MAX_AGE_S = 60.0
# No millisecond timestamp is this large (the year 33658): past it the value is not a time.
LATEST_MS = 10**15
# ``repo:owner/name`` as a label on the issue names the repository.
_REPO_LABEL = re.compile(r"^\s*repo(?:sitory)?\s*:\s*([\w.-]+/[\w.-]+)\s*$", re.IGNORECASE)
# Linear's ids are UUIDs; bounded and plain, since they reach Redis keys and log lines.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# ``updatedAt`` as Linear writes it (ISO 8601); part of an issue event's dedupe key.
_STAMP = re.compile(r"[0-9T:.+Z-]{1,40}")


def check_timestamp(payload: Any, now_s: float, *, max_age_s: float = MAX_AGE_S) -> None:
    """Refuse (:class:`SignatureError`) a delivery whose ``webhookTimestamp`` is not recent."""
    stamp = obj(payload).get("webhookTimestamp")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        raise SignatureError("webhookTimestamp missing: not a Linear delivery")
    # Before any arithmetic: JSON allows integers too large for a float, and NaN.
    if not 0 <= stamp < LATEST_MS:
        raise SignatureError("webhookTimestamp is not a time in milliseconds")
    if abs(now_s - stamp / 1000) > max_age_s:
        raise SignatureError(f"webhookTimestamp is more than {max_age_s:g} s away from now")


def linear_event_id(payload: Any) -> str | None:
    """A signed key for the event a delivery carries: the same again is a replay.

    From the body, which the signature covers, not from ``Linear-Delivery``, which it does
    not: a captured delivery resent within the timestamp window under a new header is still
    the same comment (``comment:<id>``) or the same issue change (``issue:<id>:<action>:<at>``).
    """
    body = obj(payload)
    data = obj(body.get("data"))
    kind, action, ident = text(body.get("type")), text(body.get("action")), text(data.get("id"))
    if not _ID.fullmatch(ident):
        return None
    if kind == "Comment":
        return f"comment:{ident}"
    if kind != "Issue":
        return None
    stamp = text(data.get("updatedAt")) if action == "update" else ""
    return f"issue:{ident}:{action}:{stamp if _STAMP.fullmatch(stamp) else ''}"


def parse_linear(
    payload: Any,
    *,
    label: str,
    projects: dict[str, str],
    default_repo: str | None,
    bot_user: str | None = None,
    allowed_repos: frozenset[str] = frozenset(),
) -> NewTask | Command:
    """A task from an Issue that gets ``label``, a command from a new Comment."""
    body = require_object(payload)
    kind, action = text(body.get("type")), text(body.get("action"))
    data = obj(body.get("data"))
    if kind == "Comment":
        return _comment(body, data, action, bot_user)
    if kind != "Issue":
        raise Ignored(f"Linear {kind or '(no type)'} events do not start tasks")
    wanted = label.strip().lower()
    labels = [(text(obj(x).get("id")), text(obj(x).get("name"))) for x in array(data.get("labels"))]
    ours = {lid for lid, name in labels if name.lower() == wanted}
    if not ours:
        raise Ignored(f"issue {action or '?'} without the {label!r} label starts no task")
    if action == "update":
        before = obj(body.get("updatedFrom"))
        if "labelIds" not in before or ours & {text(x) for x in array(before["labelIds"])}:
            raise Ignored(f"issue update that does not add the {label!r} label")
    elif action != "create":
        raise Ignored(f"issue {action or '?'} starts no task")
    names = sorted({name for _, name in labels} - {""})
    return _task(body, data, names, projects, default_repo, allowed_repos)


def _task(
    body: dict[str, Any],
    data: dict[str, Any],
    labels: list[str],
    projects: dict[str, str],
    default_repo: str | None,
    allowed_repos: frozenset[str],
) -> NewTask:
    issue_id = _linear_id(data.get("id"), "issue")
    key = text(data.get("identifier"))
    title = text(data.get("title")) or key or "Linear issue"
    project = text(obj(data.get("project")).get("name"))
    named = [m.group(1) for x in labels if (m := _REPO_LABEL.match(x))]
    repo = pick_repo(
        _labelled_repo(named[0], projects, allowed_repos)
        if named
        else projects.get(project.lower()),
        default_repo,
        "a 'repo:owner/name' label, map the project in HOOKAGENT_LINEAR_PROJECTS,",
    )
    url = text(body.get("url")) or text(data.get("url"))
    lines = [
        f"Linear issue {key}: {title}" if key else f"Linear issue: {title}",
        field("Team", text(obj(data.get("team")).get("name"))),
        field("Project", project),
        field("State", text(obj(data.get("state")).get("name"))),
        field("Priority", text(data.get("priorityLabel"))),
        field("Labels", ", ".join(labels)),
        field("Opened by", text(obj(body.get("actor")).get("name"))),
        field("Link", url),
        "",
        text(data.get("description")),
    ]
    return NewTask(
        source="linear",
        repository=repo,
        title=f"{key}: {title}" if key else title,
        prompt=clip_prompt("\n".join(lines).strip()),
        external_id=issue_id,
        url=url or None,
        labels=[x.lower() for x in labels],
    )


def _labelled_repo(repo: str, projects: dict[str, str], allowed_repos: frozenset[str]) -> str:
    """``repo`` from a ``repo:`` label, if configured: anyone in Linear may add a label."""
    known = allowed_repos | {r.lower() for r in projects.values()}
    if repo.lower() not in known:
        raise PayloadError(
            f"the label repo:{repo} names a repository hookagent is not configured for: "
            "add it to HOOKAGENT_ALLOWED_REPOS or as a HOOKAGENT_LINEAR_PROJECTS value"
        )
    return repo


def _linear_id(value: Any, what: str) -> str:
    """A Linear id (a UUID); anything else in a signed payload is a 422."""
    ident = text(value)
    if not _ID.fullmatch(ident):
        raise PayloadError(f"the {what} id is not a Linear id")
    return ident


def _comment(
    body: dict[str, Any], data: dict[str, Any], action: str, bot_user: str | None
) -> Command:
    if action != "create":
        raise Ignored(f"comment {action or '?'} is not a new comment")
    issue_ref = data.get("issueId") or obj(data.get("issue")).get("id")
    if not issue_ref:
        raise Ignored("a comment that is not on an issue")
    issue_id = _linear_id(issue_ref, "issue")
    comment_id = _linear_id(data.get("id"), "comment")
    if data.get("botActor") is not None:
        raise Ignored("comments by integrations are not commands")
    if data.get("externalUser") is not None or data.get("externalUserId") is not None:
        # Synced from Slack, e-mail…: Linear vouches for no account of the author.
        raise Ignored("comments synced from outside Linear are not commands")
    user = obj(data.get("user"))
    # Not the envelope's ``actor``: that is who caused the event, not the comment's author.
    user_id = text(user.get("id")) or text(data.get("userId"))
    if not user_id:
        raise Ignored("a comment without a Linear user is not a command")
    user_id = _linear_id(user_id, "user")
    actor = obj(body.get("actor"))
    # Only Linear's account record: data.user's e-mail, or the actor's when it is that user.
    email = text(user.get("email")) or (
        text(actor.get("email")) if text(actor.get("id")) == user_id else ""
    )
    names = (user_id, email) if email else (user_id,)
    if bot_user and bot_user.strip().lower() in {n.lower() for n in names}:
        raise Ignored("hookagent's own comment (HOOKAGENT_LINEAR_BOT_USER)")
    comment = text(data.get("body"))
    if is_own_comment(comment):
        raise Ignored("hookagent's own comment (it carries the hookagent marker)")
    parsed = parse_mention(comment)
    if parsed is None:
        raise Ignored("no @hookagent command in the comment")
    verb, rest = parsed
    return Command(
        source="linear",
        ref=issue_id,
        verb=verb,
        text=rest,
        # The display name is for log lines only: anyone can call themselves anything.
        actor=text(user.get("name")) or user_id,
        actor_names=names,
        actor_id=user_id,
        event_id=f"comment:{comment_id}",
        created_at=moment(data.get("createdAt"), "data.createdAt"),
    )

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

from hookagent.errors import SignatureError
from hookagent.models import NewTask
from hookagent.sources.base import (
    Ignored,
    array,
    clip_prompt,
    field,
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


def parse_linear(
    payload: Any,
    *,
    label: str,
    projects: dict[str, str],
    default_repo: str | None,
    bot_user: str | None = None,
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
    return _task(body, data, sorted({name for _, name in labels} - {""}), projects, default_repo)


def _task(
    body: dict[str, Any],
    data: dict[str, Any],
    labels: list[str],
    projects: dict[str, str],
    default_repo: str | None,
) -> NewTask:
    issue_id = text(data.get("id"))
    if not issue_id:
        raise Ignored("an issue without an id")
    key = text(data.get("identifier"))
    title = text(data.get("title")) or key or "Linear issue"
    project = text(obj(data.get("project")).get("name"))
    named = [m.group(1) for x in labels if (m := _REPO_LABEL.match(x))]
    repo = pick_repo(
        named[0] if named else projects.get(project.lower()),
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


def _comment(
    body: dict[str, Any], data: dict[str, Any], action: str, bot_user: str | None
) -> Command:
    if action != "create":
        raise Ignored(f"comment {action or '?'} is not a new comment")
    issue_id = text(data.get("issueId")) or text(obj(data.get("issue")).get("id"))
    if not issue_id:
        raise Ignored("a comment that is not on an issue")
    if data.get("botActor") is not None:
        raise Ignored("comments by integrations are not commands")
    user = obj(data.get("user")) or obj(body.get("actor"))
    names = tuple(
        n for n in (text(user.get("id")) or text(data.get("userId")),
                    text(user.get("name")), text(user.get("email"))) if n
    )  # fmt: skip
    if bot_user and bot_user.strip().lower() in {n.lower() for n in names}:
        raise Ignored("hookagent's own comment (HOOKAGENT_LINEAR_BOT_USER)")
    comment = text(data.get("body"))
    if is_own_comment(comment):
        raise Ignored("hookagent's own comment (it carries the hookagent marker)")
    parsed = parse_mention(comment)
    if parsed is None:
        raise Ignored("no @hookagent command in the comment")
    verb, rest = parsed
    actor = text(user.get("name")) or (names[0] if names else "")
    return Command(
        source="linear", ref=issue_id, verb=verb, text=rest, actor=actor, actor_names=names
    )

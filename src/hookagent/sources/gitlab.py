"""GitLab webhooks: a labelled issue starts a task; ``@hookagent`` notes command one.

Issue Hook: opened with the label, or updated so the label was added (``changes.labels``).
Note Hook: a new note on the issue (``group/project#iid``) or on the merge request hookagent
opened (``group/project!iid``). The repository is the project's ``path_with_namespace``,
nested groups and all.
"""

from __future__ import annotations

import re
from typing import Any

from hookagent.models import NewTask
from hookagent.sources.base import (
    Ignored,
    array,
    clip_prompt,
    event_key,
    field,
    moment,
    obj,
    require_object,
    text,
    user_id,
)
from hookagent.sources.changes import ChangeEnded, Ending
from hookagent.sources.commands import Command, is_own_comment, parse_instruction, parse_mention
from hookagent.sources.feedback import Feedback, gitlab_note

# ``X-Gitlab-Event`` values and the ``object_kind`` each carries.
_EVENTS = {
    "Issue Hook": "issue",
    "Confidential Issue Hook": "issue",
    "Note Hook": "note",
    "Confidential Note Hook": "note",
    "Merge Request Hook": "merge_request",
}
# The users GitLab makes for project and group access tokens (``project_42_bot_<hash>``):
# bots, whose notes on a merge request are never review feedback.
_BOT_USERNAME = re.compile(r"^(?:project|group)_\d+_bot(?:_\w+)?$")
# A Merge Request Hook's ``object_attributes.action`` that ends the request.
_ENDINGS = {"merge": Ending.MERGED, "close": Ending.CLOSED}


def parse_gitlab(
    payload: Any, *, event: str | None, label: str, bot_username: str | None = None
) -> NewTask | Command | ChangeEnded | Feedback:
    """A task from an Issue Hook that brings ``label``, a command from a Note Hook.

    A Merge Request Hook ``merge`` or ``close`` ends the task whose merge request it is. A
    diff note, or ``@hookagent <free text>``, on a merge request is review feedback.
    """
    body = require_object(payload)
    kind = _EVENTS.get(event or "") if event else text(body.get("object_kind"))
    if kind != text(body.get("object_kind")) or kind not in {"issue", "note", "merge_request"}:
        raise Ignored(f"GitLab event {event or '(none)'!r} does not start tasks")
    repo = text(obj(body.get("project")).get("path_with_namespace"))
    if kind == "note":
        return _note(body, repo, bot_username)
    if kind == "merge_request":
        return _merge_request(body, repo)
    return _issue(body, repo, label)


def _issue(body: dict[str, Any], repo: str, label: str) -> NewTask:
    issue = obj(body.get("object_attributes"))
    action = text(issue.get("action"))
    wanted = label.lower()
    labels = _titles(issue.get("labels") or body.get("labels"))
    if action == "update":
        change = obj(obj(body.get("changes")).get("labels"))
        added = _titles(change.get("current")) - _titles(change.get("previous"))
        if wanted not in added:
            raise Ignored(f"issue update that does not add the {label!r} label")
    elif action != "open" or wanted not in labels:
        raise Ignored(f"issue {action or '?'} without the {label!r} label starts no task")
    iid = text(issue.get("iid"))
    title = text(issue.get("title")) or f"Issue #{iid}"
    url = text(issue.get("url"))
    lines = [
        f"GitLab issue {repo}#{iid}: {title}",
        field("Opened by", text(obj(body.get("user")).get("username"))),
        field("Labels", ", ".join(sorted(labels))),
        field("Link", url),
        "",
        text(issue.get("description")),
    ]
    return NewTask(
        source="gitlab",
        forge="gitlab",
        repository=repo,
        title=title,
        prompt=clip_prompt("\n".join(lines).strip()),
        external_id=f"{repo}#{iid}",
        url=url or None,
    )


def _note(body: dict[str, Any], repo: str, bot_username: str | None) -> Command | Feedback:
    note = obj(body.get("object_attributes"))
    if note.get("system") is True:
        raise Ignored("system notes (label changes, mentions) are not commands")
    if text(note.get("action")) not in {"", "create"}:
        raise Ignored("an edited note is not a new command")
    kind = text(note.get("noteable_type"))
    if kind == "Issue":
        ref = f"{repo}#{text(obj(body.get('issue')).get('iid'))}"
    elif kind == "MergeRequest":
        ref = f"{repo}!{text(obj(body.get('merge_request')).get('iid'))}"
    else:
        raise Ignored(f"notes on a {kind or '?'} are not commands")
    user = obj(body.get("user"))
    author = text(user.get("username"))
    if bot_username and author.lower() == bot_username.strip().lower():
        raise Ignored("hookagent's own note (HOOKAGENT_GITLAB_BOT_USERNAME)")
    if is_own_comment(text(note.get("note"))):
        raise Ignored("hookagent's own note (it carries the hookagent marker)")
    if kind == "MergeRequest":
        if user.get("bot") is True or _BOT_USERNAME.match(author):
            raise Ignored("notes by bots are not feedback")
        instruction = parse_instruction(text(note.get("note")))
        if instruction is None or instruction[0] is None:
            return gitlab_note(body, ref, instruction[1] if instruction else None)
    parsed = parse_mention(text(note.get("note")))
    if parsed is None:
        raise Ignored("no @hookagent command in the note")
    verb, rest = parsed
    # A username can be changed (and then taken by someone else); the user id cannot.
    number = user_id(user.get("id"))
    return Command(
        source="gitlab",
        ref=ref,
        verb=verb,
        text=rest,
        actor=author,
        actor_names=(author, f"id:{number}") if number else (author,),
        actor_id=number or author.lower(),
        event_id=event_key("note", note.get("id")),
        created_at=moment(note.get("created_at"), "object_attributes.created_at"),
    )


def _merge_request(body: dict[str, Any], repo: str) -> ChangeEnded:
    request = obj(body.get("object_attributes"))
    action = text(request.get("action"))
    ending = _ENDINGS.get(action)
    if ending is None:
        raise Ignored(f"merge request {action or '?'} changes no task")
    # GitLab's hook carries no merge or close time; ``updated_at`` is when it happened.
    return ChangeEnded(
        source="gitlab",
        ref=f"{repo}!{text(request.get('iid'))}",
        ending=ending,
        actor=text(obj(body.get("user")).get("username")),
        event_id=event_key(f"mr:{ending.value}", request.get("id")),
        at=moment(request.get("updated_at"), "object_attributes.updated_at"),
    )


def _titles(labels: Any) -> set[str]:
    """Lower-cased titles of a GitLab label list (objects with ``title``)."""
    return {text(obj(x).get("title")).lower() for x in array(labels)} - {""}

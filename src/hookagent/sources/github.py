"""GitHub webhooks: a labelled issue starts a task; ``@hookagent`` comments command one."""

from __future__ import annotations

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
from hookagent.sources.commands import (
    Command,
    Verb,
    is_own_comment,
    parse_instruction,
    parse_mention,
)
from hookagent.sources.feedback import (
    Feedback,
    github_mention,
    github_review,
    github_review_comment,
)


def parse_github(
    payload: Any, *, event: str | None, label: str, bot_login: str | None = None
) -> NewTask | Command | ChangeEnded | Feedback:
    """A task from ``issues`` opened/labeled with ``label``, a command from ``issue_comment``.

    A ``pull_request`` closed (merged or not) ends the task whose pull request it is. A
    review, an inline comment, or ``@hookagent <free text>`` on the pull request is feedback.

    hookagent's own comments (its marker, or written by ``bot_login``) are never commands.
    """
    body = require_object(payload)
    repo = text(obj(body.get("repository")).get("full_name"))
    issue = obj(body.get("issue"))
    action = text(body.get("action"))
    if event == "ping":
        raise Ignored("ping")
    if event == "issue_comment":
        return _comment(body, repo, issue, action, bot_login)
    if event == "pull_request":
        return _pull_request_closed(body, repo, action)
    if event == "pull_request_review":
        return github_review(body, repo, bot_login)
    if event == "pull_request_review_comment":
        return github_review_comment(body, repo, bot_login)
    if event != "issues":
        raise Ignored(f"GitHub event {event or '(none)'!r} does not start tasks")
    labels = {text(obj(x).get("name")).lower() for x in array(issue.get("labels"))}
    if action == "labeled" and text(obj(body.get("label")).get("name")).lower() != label.lower():
        raise Ignored(f"label is not {label!r}")
    if action not in {"opened", "labeled"} or label.lower() not in labels:
        raise Ignored(f"issue {action or '?'} without the {label!r} label starts no task")
    number = text(issue.get("number"))
    title = text(issue.get("title")) or f"Issue #{number}"
    lines = [
        f"GitHub issue {repo}#{number}: {title}",
        field("Opened by", text(obj(issue.get("user")).get("login"))),
        field("Labels", ", ".join(sorted(labels))),
        field("Link", text(issue.get("html_url"))),
        "",
        text(issue.get("body")),
    ]
    return NewTask(
        source="github",
        repository=repo,
        title=title,
        prompt=clip_prompt("\n".join(lines).strip()),
        external_id=f"{repo}#{number}",
        url=text(issue.get("html_url")) or None,
        labels=sorted(labels),
    )


def _comment(
    body: dict[str, Any], repo: str, issue: dict[str, Any], action: str, bot_login: str | None
) -> Command | Feedback:
    if action != "created":
        raise Ignored(f"comment {action or '?'} is not a new comment")
    comment = obj(body.get("comment"))
    if text(obj(comment.get("user")).get("type")) == "Bot":
        raise Ignored("comments by bots are not commands")
    author = text(obj(comment.get("user")).get("login"))
    if bot_login and author.lower() == bot_login.strip().lower():
        raise Ignored("hookagent's own comment (HOOKAGENT_GITHUB_BOT_LOGIN)")
    if is_own_comment(text(comment.get("body"))):
        raise Ignored("hookagent's own comment (it carries the hookagent marker)")
    user = obj(comment.get("user")) or obj(body.get("sender"))
    if issue.get("pull_request"):
        # On a pull request, words after the mention that are no command are feedback.
        instruction = parse_instruction(text(comment.get("body")))
        if instruction is not None and instruction[0] is None and instruction[1]:
            return github_mention(body, repo, instruction[1], user)
    parsed = parse_mention(text(comment.get("body")))
    if parsed is None:
        raise Ignored("no @hookagent command in the comment")
    verb, rest = parsed
    login = text(user.get("login"))
    # A login can be renamed (and then taken by someone else); the numeric id cannot.
    number = user_id(user.get("id"))
    # ``fix-ci`` acts on the pull request, which GitHub delivers as an issue of that number.
    mark = "!" if verb is Verb.FIX_CI and issue.get("pull_request") else "#"
    return Command(
        source="github",
        ref=f"{repo}{mark}{text(issue.get('number'))}",
        verb=verb,
        text=rest,
        actor=login,
        actor_names=(login, f"id:{number}") if number else (login,),
        actor_id=number or login.lower(),
        event_id=event_key("comment", comment.get("id")),
        created_at=moment(comment.get("created_at"), "comment.created_at"),
    )


def _pull_request_closed(body: dict[str, Any], repo: str, action: str) -> ChangeEnded:
    if action != "closed":
        raise Ignored(f"pull request {action or '?'} changes no task")
    pull = obj(body.get("pull_request"))
    merged = pull.get("merged") is True
    ending = Ending.MERGED if merged else Ending.CLOSED
    at = pull.get("merged_at") if merged else pull.get("closed_at")
    who = obj(pull.get("merged_by")) if merged else obj(body.get("sender"))
    return ChangeEnded(
        source="github",
        ref=f"{repo}!{text(pull.get('number'))}",
        ending=ending,
        actor=text(who.get("login")) or text(obj(body.get("sender")).get("login")),
        event_id=event_key(f"pr:{ending.value}", pull.get("id")),
        at=moment(at, "pull_request.closed_at"),
    )

"""Sentry webhooks: the seed's ``data.event``, integration resources, the legacy plugin."""

from __future__ import annotations

from typing import Any

from hookagent.briefing.sentry import (
    BREADCRUMBS_HEADING,
    BREADCRUMBS_SHOWN,
    FRAMES_HEADING,
    FRAMES_SHOWN,
    breadcrumb_lines,
    exception_lines,
    has_details,
)
from hookagent.models import NewTask
from hookagent.sources.base import (
    Ignored,
    clip_prompt,
    field,
    obj,
    pick_repo,
    require_object,
    text,
)

__all__ = [
    "BREADCRUMBS_HEADING",
    "BREADCRUMBS_SHOWN",
    "FRAMES_HEADING",
    "FRAMES_SHOWN",
    "breadcrumb_lines",
    "exception_lines",
    "has_details",
    "parse_sentry",
]

_TASK_RESOURCES = {None, "", "issue", "event_alert", "error"}


def parse_sentry(payload: Any, *, resource: str | None, default_repo: str | None) -> NewTask:
    """A task from any Sentry shape we know; :class:`Ignored` for deliveries that start none."""
    body = require_object(payload)
    if resource not in _TASK_RESOURCES:
        raise Ignored(f"Sentry resource {resource!r} does not start tasks")
    data = obj(body.get("data"))
    issue = obj(data.get("issue"))
    if issue and text(body.get("action")) not in {"", "created"}:
        raise Ignored(f"Sentry issue action {body.get('action')!r} does not start tasks")
    event = obj(data.get("event")) or obj(data.get("error")) or obj(body.get("event"))
    title = (
        text(event.get("title"))
        or text(issue.get("title"))
        or text(event.get("message"))
        or text(body.get("message"))
        or "Sentry issue"
    )
    tags = _tags(event.get("tags")) | _tags(issue.get("tags"))
    repo = pick_repo(tags.get("repository"), default_repo, "a 'repository' tag to the event")
    links = [
        text(event.get("web_url")),
        text(issue.get("web_url")),
        text(body.get("url")),
        text(event.get("issue_url")),
    ]
    url = next((link for link in links if link), None)
    external = text(issue.get("id")) or text(event.get("issue_id")) or text(body.get("id"))
    level = text(event.get("level")) or text(issue.get("level")) or text(body.get("level"))
    lines = [
        f"Title: {title}",
        field("Message", text(event.get("message")) or text(body.get("message"))),
        field("Culprit", text(event.get("culprit")) or text(issue.get("culprit"))),
        field("Level", level),
        field("Environment", tags.get("environment", "")),
        field("Release", text(event.get("release"))),
        *exception_lines(event, issue),
        *breadcrumb_lines(event),
        field("Tags", ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))),
        *(f"Link: {link}" for link in dict.fromkeys(link for link in links if link)),
    ]
    prompt = "\n".join(line for line in lines if line)
    return NewTask(
        source="sentry",
        repository=repo,
        title=title,
        prompt=clip_prompt(prompt),
        external_id=external or None,
        url=url,
        level=level or None,
    )


def _tags(raw: Any) -> dict[str, str]:
    """Tags come as ``[key, value]`` pairs or ``{key, value}`` objects."""
    tags: dict[str, str] = {}
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, list | tuple) and len(item) == 2:
            key, value = text(item[0]), text(item[1])
        elif isinstance(item, dict):
            key, value = text(item.get("key")), text(item.get("value"))
        else:
            continue
        if key:
            tags[key] = value
    if isinstance(raw, dict):
        tags.update({text(k): text(v) for k, v in raw.items() if text(k)})
    return tags

"""Sentry webhooks: the seed's ``data.event``, integration resources, the legacy plugin."""

from __future__ import annotations

from typing import Any

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

FRAMES_SHOWN = 20
BREADCRUMBS_SHOWN = 20
# What the prompt holds when the payload carried frames and breadcrumbs (see has_details).
FRAMES_HEADING = "frames (most recent call last):"
BREADCRUMBS_HEADING = "Breadcrumbs (oldest first):"
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


def has_details(context: str) -> bool:
    """Whether a task's context (this parser's prompt) holds both stack frames and breadcrumbs."""
    return FRAMES_HEADING in context and BREADCRUMBS_HEADING in context


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


def _frame(frame: dict[str, Any]) -> list[str]:
    where = f"  {text(frame.get('filename')) or text(frame.get('abs_path'))}"
    where += f":{text(frame.get('lineno'))} in {text(frame.get('function'))}"
    context = text(frame.get("context_line"))
    return [where, f"    {context}"] if context else [where]


def breadcrumb_lines(event: dict[str, Any]) -> list[str]:
    """The last breadcrumbs before the event (``{"values": [...]}`` or a bare list)."""
    raw = event.get("breadcrumbs")
    crumbs = [obj(c) for c in array(obj(raw).get("values") if isinstance(raw, dict) else raw)]
    lines = [BREADCRUMBS_HEADING] if crumbs else []
    for crumb in crumbs[-BREADCRUMBS_SHOWN:]:
        data = obj(crumb.get("data"))
        said = text(crumb.get("message")) or " ".join(
            text(data.get(k)) for k in ("method", "url", "status_code") if text(data.get(k))
        )
        kind = "/".join(x for x in (text(crumb.get("category")), text(crumb.get("level"))) if x)
        lines.append(f"  [{text(crumb.get('timestamp'))}] {kind}: {said}")
    return lines


def exception_lines(event: dict[str, Any], issue: dict[str, Any]) -> list[str]:
    """Each exception with its frames, the application's own first; else the issue's metadata."""
    lines: list[str] = []
    values = obj(event.get("exception")).get("values")
    for exc in values if isinstance(values, list) else []:
        exc = obj(exc)
        lines.append(f"Exception: {text(exc.get('type'))}: {text(exc.get('value'))}")
        frames = [obj(f) for f in array(obj(exc.get("stacktrace")).get("frames"))]
        # The application's own frames first: that is where a fix goes; library frames after.
        own = [f for f in frames if f.get("in_app") is True]
        other = [f for f in frames if f.get("in_app") is not True]
        for heading, group in (("In-app", own), ("Other", other)):
            if group:
                lines.append(f"{heading} {FRAMES_HEADING}")
            for frame in group[-FRAMES_SHOWN:]:
                lines.extend(_frame(frame))
    metadata = obj(issue.get("metadata"))
    if not lines and metadata:
        lines.append(f"Exception: {text(metadata.get('type'))}: {text(metadata.get('value'))}")
        lines.append(field("File", text(metadata.get("filename"))))
    return lines

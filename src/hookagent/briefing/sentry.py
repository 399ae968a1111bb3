"""A Sentry event as prompt lines: the exception with its frames, then the breadcrumbs.

Shared by the webhook parser (the event in the payload) and the API reader (the latest
event, when the payload lacked it), so both read the same in the prompt.
"""

from __future__ import annotations

from typing import Any

from hookagent.json_values import array, field, obj, text

FRAMES_SHOWN = 20
BREADCRUMBS_SHOWN = 20
# What the prompt holds when the payload carried frames and breadcrumbs (see has_details).
FRAMES_HEADING = "frames (most recent call last):"
BREADCRUMBS_HEADING = "Breadcrumbs (oldest first):"


def has_details(context: str) -> bool:
    """Whether a task's context (this parser's prompt) holds both stack frames and breadcrumbs."""
    return FRAMES_HEADING in context and BREADCRUMBS_HEADING in context


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

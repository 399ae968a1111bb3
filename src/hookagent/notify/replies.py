"""The reply on the source: one comment per task, rewritten as the task moves."""

from __future__ import annotations

import json
from typing import Any

from hookagent.briefing.discussion import OWN_MARKER
from hookagent.models import Task, TaskStatus
from hookagent.notify.render import cost, duration, status_text, task_url, trim
from hookagent.settings import Settings

PLAN_CHARS = 20_000
COMMANDS = "`@hookagent approve`, `@hookagent reject <reason>` or `@hookagent revise <feedback>`"


def marker(task_id: str) -> str:
    """The text that makes a comment recognisably hookagent's own (``hookagent:task-…``)."""
    text = f"hookagent:{task_id}"
    if OWN_MARKER not in text:  # task ids start with ``task-``; anything else is a bug
        raise ValueError(f"not a task id: {task_id!r}")
    return text


def markdown_reply(
    task: Task, settings: Settings, progress: dict[str, Any] | None, decided: str | None
) -> str:
    """The GitHub/GitLab comment: status, plan and how to approve, checklist, PR, cost, failure."""
    link = task_url(settings, task.task_id)
    parts = [
        f"<!-- {marker(task.task_id)} -->",
        f"**hookagent** · {status_text(task.status)} · [task {task.task_id}]({link})",
    ]
    if decided:
        parts.append(f"> {decided}")
    if task.status is TaskStatus.PENDING_APPROVAL:
        plan, cut = trim(task.plan or "(no plan)", PLAN_CHARS)
        more = f"\n\n[The full plan]({link})" if cut else ""
        parts += [
            f"<details open><summary>Plan</summary>\n\n{plan}{more}\n\n</details>",
            f"To go ahead, comment {COMMANDS} "
            f"(approvers: `HOOKAGENT_{task.source.upper()}_APPROVERS`).",
        ]
    checklist = _checklist(progress)
    if checklist and task.status in {TaskStatus.EXECUTING, TaskStatus.COMPLETED, TaskStatus.FAILED}:
        parts.append("**Progress**\n" + checklist)
    parts += _outcome(task)
    return "\n\n".join(parts)


def jira_reply(task: Task, settings: Settings, decided: str | None) -> str:
    """The Jira comment (wiki markup), with hookagent's marker on its last line."""
    link = task_url(settings, task.task_id)
    parts = [f"*hookagent* - {status_text(task.status)} - [task {task.task_id}|{link}]"]
    if decided:
        parts.append(f"bq. {decided}")
    if task.status is TaskStatus.PENDING_APPROVAL:
        plan, cut = trim(task.plan or "(no plan)", PLAN_CHARS)
        more = f"\n[The full plan|{link}]" if cut else ""
        parts += [
            "{noformat}\n" + plan.replace("{noformat}", "") + "\n{noformat}" + more,
            "To go ahead, comment @hookagent approve (or reject <reason>, revise <feedback>), "
            f"or move the issue to {settings.jira_approve_status}.",
        ]
    parts += [line.replace("`", "") for line in _outcome(task)]
    parts.append(f"_{marker(task.task_id)}_")
    return "\n\n".join(parts)


def linear_reply(task: Task, settings: Settings, decided: str | None) -> str:
    """The Linear comment (Markdown), with hookagent's marker as its last line.

    Linear renders Markdown, not HTML: a ``<details>`` block or an HTML-comment marker would not
    survive as they do on GitHub.
    """
    link = task_url(settings, task.task_id)
    parts = [f"**hookagent** · {status_text(task.status)} · [task {task.task_id}]({link})"]
    if decided:
        parts.append(f"> {decided}")
    if task.status is TaskStatus.PENDING_APPROVAL:
        plan, cut = trim(task.plan or "(no plan)", PLAN_CHARS)
        more = f"\n\n[The full plan]({link})" if cut else ""
        parts += [
            f"**Plan**\n\n{plan}{more}",
            f"To go ahead, comment {COMMANDS} (approvers: `HOOKAGENT_LINEAR_APPROVERS`).",
        ]
    parts += _outcome(task)
    parts.append(f"_{marker(task.task_id)}_")
    return "\n\n".join(parts)


def _checklist(progress: dict[str, Any] | None) -> str:
    items = (progress or {}).get("todo_items") or []
    rows = []
    for item in items:
        if isinstance(item, dict):
            done = "x" if item.get("status") == "completed" else " "
            rows.append(f"- [{done}] {str(item.get('content', '')).strip()}")
    return "\n".join(rows)


def _outcome(task: Task) -> list[str]:
    if task.status is TaskStatus.REVISING:
        return [f"Addressing review feedback: round {task.review_rounds}"]
    if task.status is TaskStatus.COMPLETED:
        noun = "Merge request" if task.forge == "gitlab" else "Pull request"
        pr = f"{noun}: {task.pr_url}" if task.pr_url else (task.result or "no changes")
        lines = [f"{pr} · cost {cost(task)} · {duration(task)}"]
        if task.review_rounds:
            # The last round's reason: ``review round 2 pushed 1a2b3c4d5e6f``.
            lines.append(f"Review rounds: {task.review_rounds} · last: {task.result}")
        if task.checks:
            lines.append(f"`checks: {json.dumps(task.checks)}`")
        return lines
    if task.status in {TaskStatus.FAILED, TaskStatus.CANCELLED}:
        reason, _ = trim(task.error or task.status.value, 2000)
        return [f"Reason: `{reason}`" if "`" not in reason else f"Reason: {reason}"]
    return []

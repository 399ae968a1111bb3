"""Block Kit messages for Slack: the task's parent message, thread replies, the modal."""

from __future__ import annotations

from typing import Any

from hookagent.models import Task, TaskStatus
from hookagent.notify.render import cost, duration, status_text, task_url, trim
from hookagent.settings import Settings
from hookagent.sources.slack import REVISE_CALLBACK

Block = dict[str, Any]

PLAN_CHARS = 2500  # a section's text holds 3000
LINES_CHARS = 2800
HEADER_CHARS = 150
ACTIONS_BLOCK = "plan_actions"


def esc(text: str) -> str:
    """Slack's three control characters escaped, so text from outside stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _code(lines: list[str]) -> str:
    body, _ = trim("\n".join(lines), LINES_CHARS)
    # A fence inside the lines would end the code block early.
    return "```" + esc(body).replace("```", "'''") + "```"


def parent_message(task: Task, settings: Settings, decided: str | None) -> tuple[str, list[Block]]:
    """The task's one message in the channel: title, source, repository, status."""
    source = f"<{task.url}|{esc(task.source)}>" if task.url else esc(task.source)
    title, _ = trim(task.title, HEADER_CHARS)
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Status*\n{status_text(task.status)}"},
                {"type": "mrkdwn", "text": f"*Repository*\n{esc(task.repository)}"},
                {"type": "mrkdwn", "text": f"*Source*\n{source}"},
                {
                    "type": "mrkdwn",
                    "text": f"*Task*\n<{task_url(settings, task.task_id)}|{task.task_id}>",
                },
            ],
        },
    ]
    if task.pr_url:
        blocks.append(_section(f"*Pull request:* <{task.pr_url}>"))
    if task.regression_of:
        old = f"<{task_url(settings, task.regression_of)}|{task.regression_of}>"
        blocks.append(_section(f"*Regressed after merge* of {old}"))
    if decided:
        blocks.append(_context(esc(decided)))
    return f"{status_text(task.status)}: {task.title}", blocks


def plan_message(task: Task, settings: Settings, decided: str | None) -> tuple[str, list[Block]]:
    """The plan in the thread, with Approve / Reject / Revise until someone decided."""
    plan, cut = trim(task.plan or "(no plan)", PLAN_CHARS)
    link = f"<{task_url(settings, task.task_id)}|full plan>"
    blocks: list[Block] = [
        _section(
            f"*Plan ready* ({link})\n{esc(plan)}" + ("\n_… cut, see the full plan_" if cut else "")
        )
    ]
    if decided:
        blocks.append(_context(esc(decided)))
    else:
        blocks.append(
            {
                "type": "actions",
                "block_id": ACTIONS_BLOCK,
                "elements": [
                    _button("approve", "Approve", task.task_id, "primary"),
                    _button("reject", "Reject", task.task_id, "danger"),
                    _button("revise", "Revise", task.task_id, None),
                ],
            }
        )
    return f"Plan ready for {task.title}", blocks


def _button(action: str, label: str, task_id: str, style: str | None) -> Block:
    button: Block = {
        "type": "button",
        "action_id": action,
        "text": {"type": "plain_text", "text": label},
        "value": task_id,
    }
    if style:
        button["style"] = style
    return button


def outcome_message(
    task: Task, status: TaskStatus, lines: list[str]
) -> tuple[str, list[Block]] | None:
    """What the task ending in ``status`` says: PR, cost and duration, or why it failed."""
    if status is TaskStatus.COMPLETED:
        pr = f"<{task.pr_url}|pull request>" if task.pr_url else esc(task.result or "no changes")
        text = f"*Completed*: {pr}\nCost: {cost(task)} · Duration: {duration(task)}"
        return "Completed", [_section(text)]
    if status is TaskStatus.FAILED:
        reason, _ = trim(task.error or "unknown", 1000)
        blocks = [_section(f"*Failed*: {esc(reason)}")]
        if lines:
            blocks.append(_section(f"Last {len(lines)} log lines:\n{_code(lines)}"))
        return f"Failed: {reason}", blocks
    if status is TaskStatus.CANCELLED:
        reason, _ = trim(task.error or "cancelled", 1000)
        return "Cancelled", [_section(f"*Cancelled*: {esc(reason)}")]
    if status in {TaskStatus.MERGED, TaskStatus.CLOSED}:
        what = "Merged" if status is TaskStatus.MERGED else "Closed unmerged"
        pr = f"<{task.pr_url}|pull request>" if task.pr_url else "the change request"
        return what, [_section(f"*{what}*: {pr}")]
    return None


def snippet_message(lines: list[str]) -> tuple[str, list[Block]]:
    """A few new log lines during execution."""
    return "Progress", [_section(f"*Progress* (last {len(lines)} lines)\n{_code(lines)}")]


def event_message(
    task: Task, settings: Settings, status: TaskStatus, reason: str, lines: list[str]
) -> tuple[str, list[Block]]:
    """One self-contained message per event, for incoming webhooks (no buttons, no edits)."""
    task = task.model_copy(update={"status": status})  # the event's status, not a later one
    text, blocks = parent_message(task, settings, reason or None)
    if status is TaskStatus.PENDING_APPROVAL:
        plan, _ = trim(task.plan or "(no plan)", PLAN_CHARS)
        link = f"<{task_url(settings, task.task_id)}|full plan and approval>"
        blocks.append(_section(f"*Plan* ({link})\n{esc(plan)}"))
    outcome = outcome_message(task, status, lines)
    if outcome is not None:
        blocks += outcome[1]
    return text, blocks


def revise_modal(task: Task) -> dict[str, Any]:
    """The modal asking for revision feedback; its submission names the task."""
    title, _ = trim(task.title, 140)
    return {
        "type": "modal",
        "callback_id": REVISE_CALLBACK,
        "private_metadata": task.task_id,
        "title": {"type": "plain_text", "text": "Revise the plan"},
        "submit": {"type": "plain_text", "text": "Plan again"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _context(esc(title)),
            {
                "type": "input",
                "block_id": "feedback",
                "label": {"type": "plain_text", "text": "What should change?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "feedback",
                    "multiline": True,
                    "max_length": 3000,
                },
            },
        ],
    }

"""Reply on the originating GitHub issue: one comment per task, edited as the task moves."""

from __future__ import annotations

import re

from hookagent.forges.github import create_issue_comment, edit_issue_comment
from hookagent.models import Task
from hookagent.notify.base import Delivery
from hookagent.notify.replies import markdown_reply
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import OutboxEvent, Store

_ISSUE = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)#(?P<number>\d+)$")


class GitHubReply:
    """``POST …/issues/{n}/comments`` once, then ``PATCH …/issues/comments/{id}``."""

    channel = "github"

    def __init__(self, *, settings: Settings, store: Store, redactor: Redactor) -> None:
        self._settings = settings
        self._store = store
        self._redactor = redactor

    def wants(self, event: OutboxEvent, task: Task) -> bool:
        """Tasks that came from a GitHub issue."""
        return task.source == "github" and _ISSUE.match(task.external_id or "") is not None

    async def deliver(self, delivery: Delivery) -> None:
        """Write the comment, or rewrite it to the task's current state."""
        task, s = delivery.task, self._settings
        match = _ISSUE.match(task.external_id or "")
        if match is None or s.github_token is None:
            return
        if delivery.event.reason and delivery.event.previous == "pending_approval":
            await delivery.remember(decided=delivery.event.reason)
        progress = await self._store.tasks.progress(task.task_id)
        body = self._redactor.redact(
            markdown_reply(task, s, progress, delivery.state.get("decided"))
        )
        token, repo = s.github_token.get_secret_value(), match["repo"]
        if "comment_id" in delivery.state:
            await edit_issue_comment(
                api_url=s.github_api_url,
                token=token,
                repo=repo,
                comment_id=int(delivery.state["comment_id"]),
                body=body,
            )
            return
        comment = await create_issue_comment(
            api_url=s.github_api_url, token=token, repo=repo, number=int(match["number"]), body=body
        )
        await delivery.remember(comment_id=str(comment.comment_id))

    async def aclose(self) -> None:
        """Nothing to close: each call opens its own client."""

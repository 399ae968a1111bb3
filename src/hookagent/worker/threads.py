"""The discussion of the issue a task came from, read at planning time for the prompt."""

from __future__ import annotations

import re

from hookagent.errors import OutboundError
from hookagent.forges.threads import issue_comments
from hookagent.models import Task
from hookagent.settings import Settings
from hookagent.store.writer import LogWriter
from hookagent.thread import render_thread

_GITHUB_REF = re.compile(r"^([\w.-]+/[\w.-]+)#(\d+)$")


class Threads:
    """Fetches an issue's comments (GitHub, with ``HOOKAGENT_GITHUB_TOKEN``) for planning.

    Jira comments and Sentry breadcrumbs come in the webhook's payload and are already in
    the task's context; only GitHub's issue webhook lacks the comments.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def comments(self, task: Task, writer: LogWriter) -> str | None:
        """The rendered thread, or None when there is none to read (or it could not be read)."""
        s = self._settings
        ref = _GITHUB_REF.match(task.external_id or "")
        if task.source != "github" or ref is None or s.github_token is None:
            return None
        try:
            comments = await issue_comments(
                api_url=s.github_api_url,
                token=s.github_token.get_secret_value(),
                repo=ref.group(1),
                number=int(ref.group(2)),
                skip_login=s.github_bot_login,
            )
        except OutboundError as exc:
            # Planning goes on without the discussion rather than failing the task.
            await writer.system(f"issue comments not read: {exc.message}")
            return None
        await writer.system(f"read {len(comments)} comments of {task.external_id}")
        return render_thread(comments) or None

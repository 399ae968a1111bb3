"""The discussion of the issue a task came from, read at planning time for the prompt."""

from __future__ import annotations

import re

from hookagent.briefing.discussion import Comment, is_own_comment, render_thread
from hookagent.briefing.sentry import has_details
from hookagent.errors import OutboundError
from hookagent.forges import GitHubForge, GitLabForge, Thread
from hookagent.forges.linear import LinearClient
from hookagent.forges.sentry import SentryApi, render_event
from hookagent.models import Task, one_line
from hookagent.settings import Settings
from hookagent.store.writer import LogWriter

_GITHUB_REF = re.compile(r"^([\w.-]+/[\w.-]+)#(\d+)$")


class Threads:
    """Fetches an issue's comments for planning: GitHub, GitLab and Linear, each with its token.

    Jira comments and Sentry breadcrumbs come in the webhook's payload and are already in
    the task's context; the other sources' webhooks lack the discussion. Left out: comments
    by bots, hookagent's own (its marker, its bot account), GitLab's system notes.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._github = GitHubForge.from_settings(settings)
        self._gitlab = GitLabForge.from_settings(settings)
        self._linear = LinearClient.from_settings(settings)
        self._sentry = SentryApi.from_settings(settings)

    async def sentry_event(self, task: Task, writer: LogWriter) -> str | None:
        """The latest event's exception, frames and breadcrumbs, when the webhook lacked them.

        Read with ``HOOKAGENT_SENTRY_API_TOKEN`` only; None when the payload had them all, or
        when the API could not be read (logged; planning goes on with what there is).
        """
        if task.source != "sentry" or not task.external_id or self._sentry is None:
            return None
        if has_details(task.prompt):
            return None
        try:
            event = await self._sentry.latest_event(task.external_id)
        except OutboundError as exc:
            await writer.system(f"Sentry event not read: {one_line(exc.message, 500)}")
            return None
        rendered = render_event(event)
        # Ids and error texts come from payloads and outside APIs: one line each, escaped.
        await writer.system(f"read the latest event of Sentry issue {_ref(task)}")
        return rendered or None

    async def comments(self, task: Task, writer: LogWriter) -> str | None:
        """The rendered thread, or None when there is none to read (or it could not be read)."""
        try:
            found = await self._read(task)
        except OutboundError as exc:
            # Planning goes on without the discussion rather than failing the task.
            await writer.system(f"issue comments not read: {one_line(exc.message, 500)}")
            return None
        if found is None:
            return None
        await writer.system(f"read {len(found)} comments of {_ref(task)}")
        return render_thread(found) or None

    async def _read(self, task: Task) -> list[Comment] | None:
        if task.source == "github":
            return await self._github_comments(task)
        if task.source == "gitlab":
            return await self._gitlab_notes(task)
        if task.source == "linear":
            return await self._linear_comments(task)
        return None

    async def _github_comments(self, task: Task) -> list[Comment] | None:
        ref = _GITHUB_REF.match(task.external_id or "")
        if ref is None or self._github is None:
            return None
        own = (self._settings.github_bot_login or "").strip().lower()
        return [
            Comment(c.author, c.at, c.body)
            for c in await self._github.fetch_thread(Thread(ref.group(1), int(ref.group(2))))
            if not (c.by_bot or is_own_comment(c.body)) and not (own and c.author.lower() == own)
        ]

    async def _gitlab_notes(self, task: Task) -> list[Comment] | None:
        thread = Thread.parse(task.external_id)
        if thread is None or self._gitlab is None:
            return None
        own = (self._settings.gitlab_bot_username or "").strip().lower()
        return [
            Comment(note.author, note.at, note.body)
            for note in await self._gitlab.fetch_thread(thread)
            if not (note.system or note.by_bot or is_own_comment(note.body))
            and not (own and note.author.lower() == own)
        ]

    async def _linear_comments(self, task: Task) -> list[Comment] | None:
        if not task.external_id or self._linear is None:
            return None
        own = (self._settings.linear_bot_user or "").strip().lower()
        # By id only: a display name is free text, anyone could hide behind the bot's.
        return [
            Comment(c.author, c.at, c.body)
            for c in await self._linear.fetch_thread(task.external_id)
            if not (c.by_bot or is_own_comment(c.body)) and not (own and own == c.author_id.lower())
        ]


def _ref(task: Task) -> str:
    return one_line(task.external_id or "", 200)

"""Reply on the originating Linear issue: one comment, edited in place as the task moves."""

from __future__ import annotations

from hookagent.forges.linear import LinearClient
from hookagent.models import Task
from hookagent.notify.base import Delivery
from hookagent.notify.replies import linear_reply
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import OutboxEvent


class LinearReply:
    """``commentCreate`` once, then ``commentUpdate`` of that comment."""

    channel = "linear"

    def __init__(self, *, client: LinearClient, settings: Settings, redactor: Redactor) -> None:
        self._client = client
        self._settings = settings
        self._redactor = redactor

    def wants(self, event: OutboxEvent, task: Task) -> bool:
        """Tasks that came from a Linear issue."""
        return task.source == "linear" and bool(task.external_id)

    async def deliver(self, delivery: Delivery) -> None:
        """Write the comment, or rewrite it to the task's current state."""
        task, issue_id = delivery.task, str(delivery.task.external_id)
        if delivery.event.reason and delivery.event.previous == "pending_approval":
            await delivery.remember(decided=delivery.event.reason)
        body = self._redactor.redact(
            linear_reply(task, self._settings, delivery.state.get("decided"))
        )
        comment_id = delivery.state.get("comment_id")
        if comment_id is None and delivery.event.deliveries > 1:
            # An earlier try may have written the comment and died before remembering it.
            comment_id = await self._find_own(issue_id, task.task_id)
        if comment_id is not None:
            await self._client.edit_comment(comment_id, body)
            if "comment_id" not in delivery.state:
                await delivery.remember(comment_id=comment_id)
            return
        await delivery.remember(comment_id=await self._client.write_comment(issue_id, body))

    async def _find_own(self, issue_id: str, task_id: str) -> str | None:
        """This task's comment already on the issue: written by the API key's user, marked.

        The author matters: anyone can quote the marker, and editing their comment would
        overwrite what they wrote.
        """
        own, me = f"hookagent:{task_id}", await self._client.viewer_id()
        thread = await self._client.fetch_thread(issue_id)
        found = [c.comment_id for c in thread if c.author_id == me and own in c.body]
        return found[0] if found else None

    async def aclose(self) -> None:
        """Nothing to close: each call opens its own client."""

"""Reply on the originating issue (GitHub, GitLab): one comment per task, edited as it moves."""

from __future__ import annotations

from hookagent.forges import Forge, Thread
from hookagent.models import Task
from hookagent.notify.base import Delivery
from hookagent.notify.replies import markdown_reply, marker
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import OutboxEvent, Store


class ForgeReply:
    """Write the comment once through ``forge``, then edit that same comment."""

    def __init__(
        self, *, forge: Forge, settings: Settings, store: Store, redactor: Redactor
    ) -> None:
        self.channel = forge.name
        self._forge = forge
        self._settings = settings
        self._store = store
        self._redactor = redactor

    def wants(self, event: OutboxEvent, task: Task) -> bool:
        """Tasks that came from an issue on this forge."""
        return task.source == self.channel and Thread.parse(task.external_id) is not None

    async def deliver(self, delivery: Delivery) -> None:
        """Write the comment, or rewrite it to the task's current state."""
        task = delivery.task
        thread = Thread.parse(task.external_id)
        if thread is None:
            return
        if delivery.event.reason and delivery.event.previous == "pending_approval":
            await delivery.remember(decided=delivery.event.reason)
        progress = await self._store.tasks.progress(task.task_id)
        body = self._redactor.redact(
            markdown_reply(task, self._settings, progress, delivery.state.get("decided"))
        )
        comment_id = delivery.state.get("comment_id")
        if comment_id is None and delivery.event.deliveries > 1:
            # An earlier try may have written the comment and died before remembering it.
            comment_id = await self._find_own(thread, task.task_id)
        if comment_id is not None:
            await self._forge.edit_comment(thread, comment_id, body)
            if "comment_id" not in delivery.state:
                await delivery.remember(comment_id=comment_id)
            return
        comment = await self._forge.write_comment(thread, body)
        await delivery.remember(comment_id=comment.comment_id)

    async def _find_own(self, thread: Thread, task_id: str) -> str | None:
        """The id of this task's comment already on the thread, found by its marker."""
        own = marker(task_id)
        found = [c.comment_id for c in await self._forge.fetch_thread(thread) if own in c.body]
        return found[0] if found else None

    async def aclose(self) -> None:
        """Nothing to close: each call opens its own client."""

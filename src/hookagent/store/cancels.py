"""Cancel signals: the API announces a cancel over Pub/Sub; the task's worker waits for it."""

from __future__ import annotations

from typing import Any

from hookagent.keys import Keys
from hookagent.models import TaskStatus
from hookagent.store.client import Client
from hookagent.store.tasks import TaskStore

# A cancel normally arrives by Pub/Sub at once; this re-check covers a missed message.
RECHECK_S = 10.0


class CancelSignals:
    """Announce a task's cancel to whichever worker runs it, on any machine."""

    def __init__(self, redis: Client, keys: Keys, *, tasks: TaskStore) -> None:
        self._redis: Any = redis
        self._keys = keys
        self._tasks = tasks

    async def announce(self, task_id: str, actor: str) -> None:
        """Tell the task's worker (if any is subscribed) to stop the agent now."""
        await self._redis.publish(self._keys.cancel_channel(task_id), actor)

    async def wait(self, task_id: str, *, recheck_s: float = RECHECK_S) -> None:
        """Return once the task is cancelled (Pub/Sub, with a status re-check as a backstop)."""
        async with self._redis.pubsub() as pubsub:
            await pubsub.subscribe(self._keys.cancel_channel(task_id))
            while True:
                # Checked after subscribing, so a cancel between claim and here is not missed.
                if (await self._tasks.get(task_id)).status is TaskStatus.CANCELLED:
                    return
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=recheck_s
                )
                if message is not None:
                    return

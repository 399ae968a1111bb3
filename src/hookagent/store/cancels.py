"""Cancel signals: the API announces a cancel over Pub/Sub; the task's worker waits for it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import TimeoutError as LostTimeout

from hookagent.models import TaskStatus
from hookagent.race import raise_if_cancelling
from hookagent.store.client import Client, subscriber
from hookagent.store.keys import Keys
from hookagent.store.tasks import TaskStore

# A cancel normally arrives by Pub/Sub at once; this re-check covers a missed message.
RECHECK_S = 10.0
# A lost subscription is taken again after this long, doubling up to the maximum.
RESUBSCRIBE_S = 0.1
RESUBSCRIBE_MAX_S = 2.0

log = logging.getLogger(__name__)


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
        """Return once the task is cancelled (Pub/Sub, with a status re-check as a backstop).

        A lost subscription (the node restarted, or a cluster failover closed it) is taken
        again after a short wait; the status check that follows covers what it missed.
        """
        backoff = RESUBSCRIBE_S
        while True:
            try:
                await self._wait(task_id, recheck_s)
                return
            except (LostConnection, LostTimeout) as exc:
                raise_if_cancelling()  # a cancel that came out of Redis as a timeout ends it
                log.warning("cancel signal of %s: %r; subscribing again", task_id, exc)
                await asyncio.sleep(backoff)  # waiting out an outage, not polling
                backoff = min(backoff * 2, RESUBSCRIBE_MAX_S)

    async def _wait(self, task_id: str, recheck_s: float) -> None:
        async with subscriber(self._redis) as pubsub:
            await pubsub.subscribe(self._keys.cancel_channel(task_id))
            while True:
                raise_if_cancelling()  # redis-py can swallow a cancel (race.raise_if_cancelling)
                # Checked after subscribing, so a cancel between claim and here is not missed.
                if (await self._tasks.get(task_id)).status is TaskStatus.CANCELLED:
                    return
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=recheck_s
                )
                if message is not None:
                    return

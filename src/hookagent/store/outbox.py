"""The outbox: lifecycle events waiting to be notified, and what each channel already did.

The task scripts (store/tasks.py) record the event in the same Lua step as the status
change, as an effect applied to this Redis Stream right after, exactly once
(store/effects.py): a change is never recorded without its event. Notifiers read it
through the consumer group ``notifiers``: an event stays pending until its notifier acks it
after every channel delivered (or gave up), and one whose notifier died is taken over by
another once it sat idle past the lease (XAUTOCLAIM), like a job. A notifier renews the
lease while it waits between retries.

Per (task, channel) a small hash remembers what was sent: the Slack message ts, the comment
id, and a mark per delivered event, so a redelivered event edits in place or is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from hookagent.models import TaskStatus
from hookagent.store.client import Client, register_script
from hookagent.store.keys import NOTIFIER_GROUP, Keys

# Only the owner renews: XCLAIM with min-idle 0 would steal an event back from a notifier
# that took it over after our lease lapsed (the same guard as the job queue's).
_RENEW = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""

# At most one snippet per interval per task, whichever notifier process gets there first.
_SNIPPET_DUE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local last = tonumber(redis.call('HGET', KEYS[1], 'snippet_at') or '0')
if now - last < tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'snippet_at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# Event names as outbound webhooks and people see them; the stream stores the new status.
EVENT_NAMES = {
    "created": "task.created",
    "queued": "task.queued",
    "discovering": "task.planning",
    "pending_approval": "task.plan_ready",
    "approved": "task.approved",
    "rejected": "task.rejected",
    "executing": "task.executing",
    "completed": "task.completed",
    "failed": "task.failed",
    "cancelled": "task.cancelled",
    "revising": "task.revising",
    "merged": "task.merged",
    "closed": "task.closed",
}


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One lifecycle change: the task, its new status (or ``created``) and why."""

    event_id: str
    task_id: str
    event: str
    previous: str
    at: str
    attempt: int
    reason: str
    deliveries: int = 1

    @property
    def name(self) -> str:
        """The public name, ``task.plan_ready`` and so on."""
        return EVENT_NAMES.get(self.event, f"task.{self.event}")

    @property
    def status(self) -> TaskStatus | None:
        """The status the task moved to; None for ``created``."""
        try:
            return TaskStatus(self.event)
        except ValueError:
            return None


class Outbox:
    """Reads, renews and acks outbox events; keeps per-channel delivery state."""

    def __init__(self, redis: Client, keys: Keys, *, lease_ms: int, ttl_seconds: int) -> None:
        # Typed loosely on purpose, as in store/queue.py: every reply here is str.
        self._redis: Any = redis
        self._keys = keys
        self.key = keys.outbox()
        self.lease_ms = lease_ms
        self._ttl_ms = ttl_seconds * 1000
        self._renew = register_script(redis, _RENEW)
        self._snippet_due = register_script(redis, _SNIPPET_DUE)

    async def ensure_group(self) -> None:
        """Create the stream and the notifiers' group if missing, reading from the start."""
        # From id 0: events written before the first notifier ever ran are not skipped.
        try:
            await self._redis.xgroup_create(self.key, NOTIFIER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, consumer: str, *, block_ms: int, count: int = 16) -> list[OutboxEvent]:
        """Events whose notifier died (idle past the lease), else new ones (blocking)."""
        _, claimed, *_ = await self._redis.xautoclaim(
            self.key, NOTIFIER_GROUP, consumer, min_idle_time=self.lease_ms, count=count
        )
        if claimed:
            return [await self._redelivered(entry_id, fields) for entry_id, fields in claimed]
        reply = await self._redis.xreadgroup(
            NOTIFIER_GROUP, consumer, {self.key: ">"}, count=count, block=block_ms
        )
        if not reply:
            return []
        return [_event(entry_id, fields, 1) for entry_id, fields in reply[0][1]]

    async def _redelivered(self, entry_id: str, fields: dict[str, str]) -> OutboxEvent:
        pending = await self._redis.xpending_range(
            self.key, NOTIFIER_GROUP, min=entry_id, max=entry_id, count=1
        )
        deliveries = int(pending[0]["times_delivered"]) if pending else 1
        return _event(entry_id, fields, deliveries)

    async def renew(self, event: OutboxEvent, consumer: str) -> bool:
        """Reset the event's idle time; False when another notifier took it over."""
        owned: int = await self._renew(
            keys=[self.key], args=[NOTIFIER_GROUP, consumer, event.event_id]
        )
        return owned == 1

    async def ack(self, event: OutboxEvent) -> None:
        """Done for good: ack the event and drop it from the stream."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.key, NOTIFIER_GROUP, event.event_id)
            pipe.xdel(self.key, event.event_id)
            await pipe.execute()

    async def pending(self) -> int:
        """How many events were read but not yet acked."""
        info = await self._redis.xpending(self.key, NOTIFIER_GROUP)
        return int(info["pending"])

    async def state(self, task_id: str, channel: str) -> dict[str, str]:
        """What ``channel`` already did for the task."""
        state: dict[str, str] = await self._redis.hgetall(self._keys.notify_state(task_id, channel))
        return state

    async def save_state(self, task_id: str, channel: str, fields: dict[str, str]) -> None:
        """Remember ``fields`` for the task on ``channel`` (kept as long as the task)."""
        key = self._keys.notify_state(task_id, channel)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()

    async def snippet_due(self, task_id: str, channel: str, interval_s: float) -> bool:
        """True (and the clock restarted) when the task's last snippet is ``interval_s`` old."""
        key = self._keys.notify_state(task_id, channel)
        due: int = await self._snippet_due(keys=[key], args=[int(interval_s * 1000), self._ttl_ms])
        return due == 1


def _event(entry_id: str, fields: dict[str, str], deliveries: int) -> OutboxEvent:
    return OutboxEvent(
        event_id=entry_id,
        task_id=fields.get("task_id", ""),
        event=fields.get("event", ""),
        previous=fields.get("previous", ""),
        at=fields.get("at", ""),
        attempt=int(fields.get("attempt") or 0),
        reason=fields.get("reason", ""),
        deliveries=deliveries,
    )

"""A small reliable job queue on a Redis Stream consumer group.

A job stays in the group's pending list until its worker acks it. The pending entry's idle
time is the lease: the worker renews it (XCLAIM by its owner) while the job runs, and any
worker reclaims jobs idle past the lease (XAUTOCLAIM), so a dead worker's job runs again.
XAUTOCLAIM counts deliveries, which caps retries.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from hookagent.models import Phase
from hookagent.store.client import Client, register_script
from hookagent.store.keys import WORKER_GROUP, Keys

# Renew only while we still own the entry: a plain XCLAIM with min-idle 0 would steal it
# back from a worker that reclaimed it after our lease lapsed.
_RENEW = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""


# What a blocking command's BLOCK leaves of the client's socket timeout, so its empty reply
# arrives before redis-py gives up on the read (redis-py 8 defaults to a 5 s timeout).
BLOCK_HEADROOM_S = 1.5
MIN_BLOCK_MS = 100


def block_slice_ms(redis: Client, block_ms: int) -> int:
    """The longest BLOCK (at most ``block_ms``) one call on ``redis`` may use without timing out."""
    timeout = redis.get_connection_kwargs().get("socket_timeout")
    if timeout is None:
        return block_ms
    return min(block_ms, max(MIN_BLOCK_MS, int((float(timeout) - BLOCK_HEADROOM_S) * 1000)))


@dataclass(frozen=True, slots=True)
class Job:
    """A delivered job: its stream entry id, task, phase and how often it was delivered."""

    job_id: str
    task_id: str
    phase: Phase
    deliveries: int


class JobQueue:
    """Enqueue, claim, renew and ack jobs of one named queue."""

    def __init__(self, redis: Client, keys: Keys, *, name: str, lease_ms: int) -> None:
        # Typed loosely on purpose: redis-py's annotations differ from 5.x to 8.x, and with
        # decode_responses=True every reply here is str.
        self._redis: Any = redis
        self.key = keys.queue(name)
        self.name = name
        self.lease_ms = lease_ms
        self._renew = register_script(redis, _RENEW)

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group if missing."""
        try:
            await self._redis.xgroup_create(self.key, WORKER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @staticmethod
    def message(task_id: str, phase: Phase) -> str:
        """A job's stream fields as the flat JSON list the task scripts XADD (one format)."""
        return json.dumps(["task_id", task_id, "phase", phase.value])

    async def claim(self, consumer: str, *, block_ms: int) -> Job | None:
        """A job whose lease lapsed, else the next new one (waiting up to ``block_ms``)."""
        stale = await self.reclaim(consumer)
        if stale is not None:
            return stale
        # Waits in slices the client's socket timeout outlasts: the pool also serves short
        # requests, so its timeout stays short and a long BLOCK is split instead.
        deadline = asyncio.get_running_loop().time() + block_ms / 1000
        while True:
            remaining_ms = int((deadline - asyncio.get_running_loop().time()) * 1000)
            block = block_slice_ms(self._redis, max(1, remaining_ms))  # BLOCK 0 is forever
            reply = await self._redis.xreadgroup(
                WORKER_GROUP, consumer, {self.key: ">"}, count=1, block=block
            )
            if reply:
                entry_id, fields = reply[0][1][0]
                return _job(entry_id, fields, deliveries=1)
            if remaining_ms <= block:
                return None

    async def reclaim(self, consumer: str) -> Job | None:
        """Take over one job whose worker stopped renewing its lease."""
        _, claimed, *_ = await self._redis.xautoclaim(
            self.key, WORKER_GROUP, consumer, min_idle_time=self.lease_ms, start_id="0-0", count=1
        )
        if not claimed:
            return None
        entry_id, fields = claimed[0]
        pending = await self._redis.xpending_range(
            self.key, WORKER_GROUP, min=entry_id, max=entry_id, count=1
        )
        deliveries = int(pending[0]["times_delivered"]) if pending else 1
        return _job(entry_id, fields, deliveries=deliveries)

    async def renew(self, job: Job, consumer: str) -> bool:
        """Reset the job's idle time; False when another worker has taken it over."""
        owned: int = await self._renew(keys=[self.key], args=[WORKER_GROUP, consumer, job.job_id])
        return owned == 1

    async def release(self, job: Job, consumer: str) -> None:
        """Hand a job back: mark it idle past the lease so the next claim reclaims it at once."""
        await self._redis.xclaim(
            self.key, WORKER_GROUP, consumer, 0, [job.job_id], idle=self.lease_ms, justid=True
        )

    async def defer(self, job: Job, consumer: str, *, after_ms: int) -> None:
        """Hand a job back to be reclaimed in ``after_ms``, this delivery not counted.

        Its idle time is set short of the lease by ``after_ms``, and its delivery count one
        back, since the reclaim (XAUTOCLAIM) counts it again: waiting for room is not a
        failed attempt, so it never brings the job nearer ``HOOKAGENT_MAX_DELIVERIES``.
        """
        await self._redis.xclaim(
            self.key,
            WORKER_GROUP,
            consumer,
            0,
            [job.job_id],
            idle=max(self.lease_ms - after_ms, 0),
            retrycount=job.deliveries - 1,
            justid=True,
        )

    async def ack(self, job: Job) -> None:
        """Finish the job for good: ack it and drop it from the stream."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.key, WORKER_GROUP, job.job_id)
            pipe.xdel(self.key, job.job_id)
            await pipe.execute()


def _job(entry_id: str, fields: dict[str, str], *, deliveries: int) -> Job:
    return Job(
        job_id=entry_id,
        task_id=fields["task_id"],
        phase=Phase(fields.get("phase", Phase.PLAN)),
        deliveries=deliveries,
    )

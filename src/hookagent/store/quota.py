"""Each agent's model quota, shared by every worker, and the tasks parked on it.

When a run ends on its model's quota (429, usage limit, overload) the agent is marked
exhausted until a time: the ``Retry-After`` the API gave, else a backoff that doubles from
``BACKOFF_START_S`` with each hit in a row, capped by the caller. Every worker reads the
mark before starting a run of that agent, so the tasks queued behind it wait too instead
of running into the same wall. A parked task keeps what its next run resumes with.

The mark holds other tasks back only once a second task has hit the wall (it is then
``shared``). A hit is read from the CLI's output, which a tool the agent runs can write
into (``/proc/<pid>/fd/1``): one task's agent, told by a stranger to do so, could
otherwise fake a wall that stops every task of that agent for up to the cap. A real wall
costs one more refused call, which the API does not charge for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from hookagent.store.client import Client, register_script
from hookagent.store.keys import Keys

BACKOFF_START_S = 60.0
# How long an agent's hit count outlives its wait: hits within a day of each other are in a
# row, so the backoff keeps doubling while the quota stays short.
HITS_MEMORY_S = 86400

# One script, so two workers hitting the wall at once count two hits and the later ``until``
# wins; the first task to hit is kept, and a hit from any other task shares the mark.
# ARGV: now, retry-after (negative: none), backoff start, cap, reason, memory (s), task id.
_EXHAUST = """
local hits = redis.call('HINCRBY', KEYS[1], 'hits', 1)
local wait = tonumber(ARGV[2])
if wait < 0 then wait = tonumber(ARGV[3]) * 2 ^ (hits - 1) end
local now = tonumber(ARGV[1])
local till = now + math.min(wait, tonumber(ARGV[4]))
local old = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if old > till then till = old end
local first = redis.call('HGET', KEYS[1], 'first')
if not first then
  redis.call('HSET', KEYS[1], 'first', ARGV[7])
elseif first ~= ARGV[7] then
  redis.call('HSET', KEYS[1], 'shared', '1')
end
redis.call('HSET', KEYS[1], 'until', string.format('%.3f', till), 'reason', ARGV[5])
redis.call('EXPIRE', KEYS[1], math.ceil(till - now) + tonumber(ARGV[6]))
local shared = redis.call('HGET', KEYS[1], 'shared') or '0'
return {string.format('%.3f', till), string.format('%.3f', wait), hits, shared}
"""


@dataclass(frozen=True, slots=True)
class AgentQuota:
    """An agent out of quota until ``until`` (epoch seconds), why, and its hits in a row.

    ``shared``: hit by two tasks or more, so every task of the agent waits for it.
    """

    agent: str
    until: float
    reason: str
    hits: int
    shared: bool = False

    def remaining(self, now: float | None = None) -> float:
        """Seconds left to wait (0 once ``until`` has passed)."""
        return max(0.0, self.until - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class Exhausted:
    """A recorded hit: the agent's state, and the wait it asked for before any cap."""

    quota: AgentQuota
    wanted_s: float


@dataclass(frozen=True, slots=True)
class Parked:
    """What a task waiting on its agent's quota resumes with, and the end of its wait.

    ``phase`` and ``session`` are empty for a task held back before it ran (nothing to
    resume); ``base`` is the branch an execution started from.
    """

    agent: str
    phase: str
    session: str | None
    base: str | None
    until: float = 0.0

    def waiting_until(self, until: float) -> Parked:
        """The same resume point, waiting until ``until``."""
        return replace(self, until=until)


class QuotaStore:
    """Marks agents exhausted, reads the marks, and keeps parked tasks' resume points."""

    def __init__(self, redis: Client, keys: Keys, *, ttl_seconds: int) -> None:
        # Typed loosely like the other stores: redis-py's annotations vary across versions.
        self._redis: Any = redis
        self._keys = keys
        self._ttl = ttl_seconds
        self._exhaust = register_script(redis, _EXHAUST)

    async def exhaust(
        self,
        agent: str,
        *,
        task_id: str,
        reason: str,
        retry_after_s: float | None,
        wait_max_s: float,
    ) -> Exhausted:
        """Mark ``agent`` out of quota for the API's wait or the backoff, at most ``wait_max_s``.

        ``task_id`` is the task whose run hit the wall: the mark is shared from a second
        task's hit on.
        """
        now = time.time()
        wanted = -1.0 if retry_after_s is None else retry_after_s
        reply = await self._exhaust(
            keys=[self._keys.agent_quota(agent)],
            args=[
                f"{now:.3f}", wanted, BACKOFF_START_S, wait_max_s, reason, HITS_MEMORY_S, task_id
            ],
        )  # fmt: skip
        until, wait, hits, shared = reply
        quota = AgentQuota(
            agent=agent, until=float(until), reason=reason, hits=int(hits), shared=shared == "1"
        )
        return Exhausted(quota=quota, wanted_s=float(wait))

    async def state(self, agent: str) -> AgentQuota | None:
        """The agent's mark while it lasts, shared or not; None when none is known."""
        raw = await self._redis.hgetall(self._keys.agent_quota(agent))
        return _quota(agent, raw, time.time())

    async def states(self, agents: tuple[str, ...]) -> list[AgentQuota]:
        """The shared marks of ``agents`` that still last (all in one slot: one pipeline)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent in agents:
                pipe.hgetall(self._keys.agent_quota(agent))
            replies = await pipe.execute()
        now = time.time()
        found = [_quota(agent, raw, now) for agent, raw in zip(agents, replies, strict=True)]
        return [quota for quota in found if quota is not None and quota.shared]

    async def recover(self, agent: str) -> None:
        """The agent's run went through: forget its mark and its hits in a row."""
        await self._redis.delete(self._keys.agent_quota(agent))

    async def park(self, task_id: str, parked: Parked) -> None:
        """Keep the resume point of a task that waits on its agent's quota."""
        fields = {"agent": parked.agent, "phase": parked.phase, "until": f"{parked.until:.3f}"}
        fields |= {k: v for k, v in (("session", parked.session), ("base", parked.base)) if v}
        key = self._keys.parked(task_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def parked(self, task_id: str) -> Parked | None:
        """The task's resume point, if it waits on a quota."""
        raw = await self._redis.hgetall(self._keys.parked(task_id))
        if not raw.get("agent"):
            return None
        return Parked(
            agent=raw["agent"],
            phase=raw.get("phase", ""),
            session=raw.get("session"),
            base=raw.get("base"),
            until=_float(raw.get("until")),
        )

    async def unpark(self, task_id: str) -> None:
        """The task no longer waits on a quota."""
        await self._redis.delete(self._keys.parked(task_id))


def _float(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def _quota(agent: str, raw: dict[str, str], now: float) -> AgentQuota | None:
    until = _float(raw.get("until"))
    if until <= now:
        return None
    return AgentQuota(
        agent=agent,
        until=until,
        reason=raw.get("reason", ""),
        hits=int(raw.get("hits", 0)),
        shared=raw.get("shared") == "1",
    )

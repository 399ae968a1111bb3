"""Run slots per repository: at most ``limit`` agent runs of one repository at once.

A sorted set per repository holds the runs that have a slot (member: the attempt's lease
token, score: when the slot lapses, in Redis server time so workers' clocks do not matter).
Taking, renewing and giving back a slot are one script each call: lapsed members are
dropped first, so the slot of a killed worker frees itself one lease after its last
renewal. A second set beside it remembers which tasks were told they wait, so the task log
says so once per wait, not once per retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookagent.store.client import Client, register_script
from hookagent.store.keys import Keys

# A task told it waits is told again only after this long (or after it ran).
WAIT_NOTE_MS = 3600 * 1000

# KEYS: runs, waiting. ARGV: member, task id, ttl ms, limit, mode ('take' | 'renew'),
# how long a wait note lasts (ms).
# Returns {held (0/1), runs holding a slot, first time this task is told it waits (0/1)}.
_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if not held and (ARGV[5] == 'renew' or n >= limit) then
  if ARGV[5] == 'renew' then return {0, n, 0} end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[6]))
  local first = redis.call('ZADD', KEYS[2], 'NX', now, ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  return {0, n, first}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZREM', KEYS[2], ARGV[2])
if held then return {1, n, 0} end
return {1, n + 1, 0}
"""


@dataclass(frozen=True, slots=True)
class SlotAnswer:
    """Whether a run got its slot, how many runs hold one, and if this wait is news."""

    held: bool
    running: int
    first_wait: bool


class RepoSlots:
    """Takes, renews and gives back per-repository run slots that lapse after ``ttl_ms``."""

    def __init__(self, redis: Client, keys: Keys, *, limit: int, ttl_ms: int) -> None:
        self._redis: Any = redis  # replies are lists of ints; redis-py's stubs vary
        self._keys = keys
        self.limit = limit
        self._ttl_ms = ttl_ms
        self._slot = register_script(redis, _SLOT)

    async def take(self, repo: str, member: str, task_id: str) -> SlotAnswer:
        """A slot for ``member`` (a lease token) unless ``limit`` runs of ``repo`` hold one."""
        return await self._call("take", repo, member, task_id)

    async def renew(self, repo: str, member: str) -> bool:
        """Push the slot's lapse a ttl further; False when it lapsed and was not kept."""
        return (await self._call("renew", repo, member, "")).held

    async def release(self, repo: str, member: str) -> None:
        """Give the slot back at once."""
        await self._redis.zrem(self._keys.repo_runs(repo), member)

    async def _call(self, mode: str, repo: str, member: str, task_id: str) -> SlotAnswer:
        keys = [self._keys.repo_runs(repo), self._keys.repo_waiting(repo)]
        args: list[str | int] = [member, task_id, self._ttl_ms, self.limit, mode, WAIT_NOTE_MS]
        held, running, first = await self._slot(keys=keys, args=args)
        return SlotAnswer(held=held == 1, running=int(running), first_wait=first == 1)

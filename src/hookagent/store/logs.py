"""Task logs: one Redis Stream per task, entry id ``0-<seq+1>``, written in fenced batches."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hookagent.errors import FencedOut, TaskNotFound, quoted
from hookagent.keys import Keys
from hookagent.models import LogEntry

# Appends a batch in one round trip. The batch travels as one JSON argument: encoding a
# million separate arguments costs the client far more than cjson.decode costs the server.
# The next seq lives in the task hash (same slot), so ids stay dense and ``offset`` is an
# XRANGE start. When the cap is reached the last slot
# holds a marker and later lines are dropped, so a runaway agent cannot fill the server.
_APPEND = """
local token = ARGV[1]
local ttl, cap, attempt = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOTFOUND') end
if token ~= '' and redis.call('HGET', KEYS[1], 'lease_token') ~= token then
  return redis.error_reply('FENCED')
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'log_seq') or '0')
if redis.call('HEXISTS', KEYS[1], 'log_capped') == 1 then return seq end
local stream = KEYS[2]
local rows = cjson.decode(ARGV[5])
for _, row in ipairs(rows) do
  local ts, source, msg, kind, raw = row[1], row[2], row[3], row[4], row[5]
  local id = '0-' .. (seq + 1)
  if seq >= cap - 1 then
    redis.call('XADD', stream, id, 'ts', ts, 'stream', 'system', 'msg',
      '[system] log limit of ' .. cap .. ' lines reached; further output is dropped',
      'attempt', attempt, 'kind', 'error')
    seq = seq + 1
    redis.call('HSET', KEYS[1], 'log_capped', '1')
    break
  end
  if kind == '' and raw == '' then
    redis.call('XADD', stream, id, 'ts', ts, 'stream', source, 'msg', msg, 'attempt', attempt)
  elseif raw == '' then
    redis.call('XADD', stream, id, 'ts', ts, 'stream', source, 'msg', msg, 'attempt', attempt,
      'kind', kind)
  else
    redis.call('XADD', stream, id, 'ts', ts, 'stream', source, 'msg', msg, 'attempt', attempt,
      'kind', kind, 'raw', raw)
  end
  seq = seq + 1
end
redis.call('HSET', KEYS[1], 'log_seq', seq)
redis.call('PEXPIRE', stream, ttl)
return seq
"""


class NewLine(NamedTuple):
    """A log line waiting to be written; ``kind`` and ``raw`` may be empty."""

    timestamp: str
    stream: str
    message: str
    kind: str = ""
    raw: str = ""


class LogStore:
    """Appends to and reads a task's log stream."""

    def __init__(self, redis: Redis, keys: Keys, *, ttl_seconds: int, max_lines: int) -> None:
        # Typed loosely on purpose: redis-py's annotations differ from 5.x to 8.x, and with
        # decode_responses=True every reply here is str.
        self._redis: Any = redis
        self._keys = keys
        self._ttl_ms = ttl_seconds * 1000
        self._max_lines = max_lines
        self._append = redis.register_script(_APPEND)

    async def append(
        self, task_id: str, lines: list[NewLine], *, token: str = "", attempt: int = 0
    ) -> int:
        """Append ``lines`` in one round trip; returns the new total. Fenced by ``token``."""
        args: list[str | int] = [token, self._ttl_ms, self._max_lines, attempt, json.dumps(lines)]
        keys = [self._keys.task(task_id), self._keys.logs(task_id)]
        try:
            total: int = await self._append(keys=keys, args=args)
        except ResponseError as exc:
            if str(exc).startswith("FENCED"):
                raise FencedOut(f"task {task_id} is held by another attempt") from None
            if str(exc).startswith("NOTFOUND"):
                raise TaskNotFound(f"no task {quoted(task_id)} (unknown or expired)") from None
            raise
        return total

    async def read(self, task_id: str, *, offset: int, limit: int) -> tuple[list[LogEntry], int]:
        """Entries from ``offset`` (``limit`` -1 for all) and the total count; one round trip."""
        key = self._keys.logs(task_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(self._keys.task(task_id))
            pipe.xrange(key, f"0-{offset + 1}", "+", count=None if limit < 0 else limit)
            pipe.xlen(key)
            exists, rows, total = await pipe.execute()
        if not exists:
            raise TaskNotFound(f"no task {quoted(task_id)} (unknown or expired)")
        return [LogEntry.from_fields(entry_id, fields) for entry_id, fields in rows], int(total)

    async def total(self, task_id: str) -> int:
        """How many entries the task's log holds."""
        count: int = await self._redis.xlen(self._keys.logs(task_id))
        return count

"""A new task's delivery in one round trip, on one Redis server.

``TaskStore.create_marked`` creates a task in steps that each stay on one Redis Cluster
slot (draft, marks, seal, effects), and intake adds a rate count, a dedupe lookup, a queue
room check and the webhook counter around it: seven round trips per delivery, most of a
delivery's CPU in redis-py. On one server every key is reachable from one script, so the
common case (a new incident, nothing marked yet) is one ``EVALSHA`` that counts the
delivery against its rate, checks that neither mark exists, checks the queue's room, then
writes everything :data:`~hookagent.store.tasks._SEAL` would have recorded as effects (the
hash, history, marks, both indexes, the planning job, the ``created`` outbox event, the
board entry) and the webhook count. Atomic, so nothing is left for a sweep. Anything else
(a mark exists: a duplicate, a recurrence, a stale mark) is answered ``seen`` and intake
takes the stepwise path, which decides it as before. A cluster always takes that path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from hookagent.errors import ConflictError
from hookagent.models import (
    TASK_DEFAULTS,
    NewTask,
    Phase,
    StatusChange,
    Task,
    TaskStatus,
    hash_fields,
    new_task_id,
    utc_iso,
)
from hookagent.store.client import Client, register_script
from hookagent.store.keys import Keys
from hookagent.store.metrics import webhook_field
from hookagent.store.queue import JobQueue
from hookagent.store.rates import RateLimiter
from hookagent.store.tasks import created_ms

# KEYS: rate counter, delivery mark, ref mark, queued index, task hash, history, created
# index, job stream, outbox, board, metrics hash. ARGV: rate limit (0: none), rate TTL (ms),
# has delivery, has ref, queue cap (0: none), task TTL (ms), dedupe TTL (ms), history record,
# task id, score, job fields (JSON), created at, webhook field ('': none), the hash's fields
# (a JSON list: one argument packs far cheaper in redis-py than sixty).
_INTAKE = """
local limit = tonumber(ARGV[1])
if limit > 0 then
  local n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  if n > limit then return {'limited', n} end
end
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return {'seen', 0} end
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return {'seen', 0} end
local cap = tonumber(ARGV[5])
if cap > 0 then
  local queued = redis.call('ZCARD', KEYS[4])
  if queued >= cap then return {'full', queued} end
end
if redis.call('EXISTS', KEYS[5]) == 1 then return {'exists', 0} end
local ttl, tid, score = tonumber(ARGV[6]), ARGV[9], ARGV[10]
redis.call('HSET', KEYS[5], unpack(cjson.decode(ARGV[14])))
redis.call('PEXPIRE', KEYS[5], ttl)
redis.call('RPUSH', KEYS[6], ARGV[8])
redis.call('PEXPIRE', KEYS[6], ttl)
if ARGV[3] == '1' then redis.call('SET', KEYS[2], tid, 'PX', ARGV[7]) end
if ARGV[4] == '1' then redis.call('SET', KEYS[3], tid, 'PX', ttl) end
redis.call('ZADD', KEYS[7], score, tid)
redis.call('ZADD', KEYS[4], score, tid)
redis.call('XADD', KEYS[8], '*', unpack(cjson.decode(ARGV[11])))
redis.call('XADD', KEYS[9], '*', 'task_id', tid, 'event', 'created', 'previous', '',
  'at', ARGV[12], 'attempt', '0', 'reason', '')
redis.call('XADD', KEYS[10], 'MAXLEN', '~', 1000, '*', 'task_id', tid, 'status', 'queued')
if ARGV[13] ~= '' then redis.call('HINCRBY', KEYS[11], ARGV[13], 1) end
return {'created', 0}
"""

Verdict = Literal["created", "limited", "seen", "full"]


@dataclass(frozen=True, slots=True)
class IntakeReply:
    """What the script did: ``created`` (``task`` set), or why it did nothing.

    ``limited``: over the source's rate (``count`` is the window's count); ``seen``: a mark
    exists, decide stepwise; ``full``: the queue is at its cap (``count`` tasks queued).
    """

    verdict: Verdict
    count: int = 0
    task: Task | None = None


class OneTripIntake:
    """Creates a task for a delivery in one script call (one server only, see the module)."""

    def __init__(
        self,
        redis: Client,
        keys: Keys,
        *,
        jobs: JobQueue,
        rates: RateLimiter,
        ttl_seconds: int,
        dedupe_ttl_seconds: int,
    ) -> None:
        self._keys = keys
        self._jobs = jobs
        self._rates = rates
        self._ttl_ms = ttl_seconds * 1000
        self._dedupe_ttl_ms = dedupe_ttl_seconds * 1000
        self._script: Any = register_script(redis, _INTAKE)

    async def create(
        self,
        new: NewTask,
        *,
        delivery: str | None,
        count: bool,
        cap: int,
        webhook: str,
    ) -> IntakeReply:
        """Create ``new`` unless over the rate (``count``: count it), marked, or at ``cap``.

        ``webhook`` is the source counted as a ``created`` webhook when the task is made
        (none: the caller counts).
        """
        k, source, ref = self._keys, new.source, new.external_id
        now = utc_iso()
        # Not validated again: ``new`` was, and the rest is ours (a third of this call's CPU).
        # Every field given: model_construct inspects a default factory's signature per call.
        values = {
            **TASK_DEFAULTS,
            **new.model_dump(),
            "task_id": new_task_id(),
            "status": TaskStatus.QUEUED,
            "created_at": now,
            "updated_at": now,
            "checks": {},
        }
        task = Task.model_construct(**values)
        tid = task.task_id
        rate_key, limit, rate_ttl = self._rates.window_key(source) if count else ("", 0, 0)
        record = StatusChange(status=TaskStatus.QUEUED, at=now).model_dump_json(exclude_none=True)
        keys = [
            rate_key or k.metrics(),  # any key will do when there is no rate to count
            k.delivery(source, delivery) if delivery else k.metrics(),
            k.ref(source, ref) if ref else k.metrics(),
            k.tasks_by_status(TaskStatus.QUEUED),
            k.task(tid),
            k.history(tid),
            k.tasks_by_created(),
            self._jobs.key,
            k.outbox(),
            k.events(),
            k.metrics(),
        ]
        fields = _json_array([part for pair in hash_fields(values).items() for part in pair])
        args = [
            limit,
            rate_ttl,
            "1" if delivery else "0",
            "1" if ref else "0",
            cap,
            self._ttl_ms,
            self._dedupe_ttl_ms,
            record,
            tid,
            created_ms(tid),
            self._jobs.message(tid, Phase.PLAN),
            now,
            webhook_field(webhook, "created") if webhook else "",
            fields,
        ]
        verdict, counted = await self._script(keys=keys, args=args)
        if verdict == "exists":  # 48 random bits collided: as in create_marked
            raise ConflictError(f"task {tid} exists already")
        return IntakeReply(verdict, int(counted), task if verdict == "created" else None)


def _json_array(parts: list[str]) -> bytes | str:
    """``parts`` as a JSON array, in UTF-8 and not escaped: the script stores the very strings.

    orjson writes it ten times faster than json. A lone surrogate, which orjson refuses, is
    written by json, and then fails to encode before anything is sent, as every other write
    of ours would.
    """
    try:
        return orjson.dumps(parts)
    except orjson.JSONEncodeError:
        return json.dumps(parts, ensure_ascii=False)

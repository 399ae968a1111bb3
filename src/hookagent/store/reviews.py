"""Review feedback on a task's change request, gathered into rounds, one round job at a time.

Feedback items (a review, an inline comment, an ``@hookagent`` comment) go to the task's
pending list, each at most once (its comment id in a seen set: a retried delivery adds
nothing). The first item while no round job exists queues one (``round_job`` in the task
hash says one exists), recorded as an effect in the same atomic step (store/effects.py), so
an item is never stored without a job that will answer it. The job waits until feedback has
been quiet for the debounce (the worker defers it through the queue), then takes the pending
list whole as its round; what arrives while it runs stays pending. Once the round is over and
the task delivered again, one more job is queued if anything is pending, else ``round_job`` is
dropped, in one step: so one round job exists per task at a time, and two rounds never run at
once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from hookagent.errors import TaskNotFound, quoted
from hookagent.models import Phase
from hookagent.store.client import Client, batch, register_script, script_command
from hookagent.store.effects import Effects
from hookagent.store.keys import Keys
from hookagent.store.queue import JobQueue

# Like store/tasks.py's: an effect's id is the task id and a counter in the task hash.
_EFFECT = """
local function effect(task_id, e)
  e['id'] = task_id .. ':' .. redis.call('HINCRBY', KEYS[1], 'effect_seq', 1)
  redis.call('RPUSH', KEYS[EFFECTS], cjson.encode(e))
end
"""

# KEYS: task, seen, pending, effects. ARGV: feedback id ('' for none), item, now (ms),
# ttl (ms), job stream, job message, task id. Returns {added, queued, pending effects}.
_ADD = (
    _EFFECT.replace("EFFECTS", "4")
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOTFOUND') end
local ttl = tonumber(ARGV[4])
if ARGV[1] ~= '' then
  if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return {0, 0, {}} end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('HSET', KEYS[1], 'feedback_at', ARGV[3])
local queued = 0
if redis.call('HSETNX', KEYS[1], 'round_job', '1') == 1 then
  effect(ARGV[7], {x = ARGV[5], f = cjson.decode(ARGV[6])})
  queued = 1
  redis.call('PEXPIRE', KEYS[4], ttl)
end
return {1, queued, redis.call('LRANGE', KEYS[4], 0, -1)}
"""
)

# KEYS: task, pending, current. ARGV: ttl (ms). A round taken before (its worker died) is
# taken again as it was. Returns {round number, items}; number 0 when nothing is pending.
_TAKE = """
if redis.call('EXISTS', KEYS[3]) == 0 then
  if redis.call('EXISTS', KEYS[2]) == 0 then return {0, {}} end
  redis.call('RENAME', KEYS[2], KEYS[3])
  redis.call('HINCRBY', KEYS[1], 'review_rounds', 1)
end
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[1]))
return {tonumber(redis.call('HGET', KEYS[1], 'review_rounds') or '0'),
  redis.call('LRANGE', KEYS[3], 0, -1)}
"""

# KEYS: current, rounds. ARGV: the round's record ('' for none), ttl (ms).
_CLOSE = """
if ARGV[1] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
end
redis.call('DEL', KEYS[1])
return 0
"""

# KEYS: task, pending, effects. ARGV: ttl (ms), job stream, job message, task id. After the
# task is delivered again: the next round's job if feedback waits, else no round job.
# Returns {queued, pending effects}.
_NEXT = (
    _EFFECT.replace("EFFECTS", "3")
    + """
if redis.call('LLEN', KEYS[2]) > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  effect(ARGV[4], {x = ARGV[2], f = cjson.decode(ARGV[3])})
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[1]))
  return {1, redis.call('LRANGE', KEYS[3], 0, -1)}
end
redis.call('HDEL', KEYS[1], 'round_job')
return {0, redis.call('LRANGE', KEYS[3], 0, -1)}
"""
)

# KEYS: task, pending. Feedback no round will answer (past ``max_rounds``, or the task ended).
_DROP = """
local dropped = redis.call('LLEN', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], 'round_job')
return dropped
"""

# KEYS: task, pending. ARGV: how many items to remove, those items, then items to add. What
# the worker settled before a round (a CI failure read, or answered without a round); with
# nothing left pending, no round job. Returns how many items are pending.
_REWRITE = """
local n = tonumber(ARGV[1])
for i = 2, n + 1 do redis.call('LREM', KEYS[2], 1, ARGV[i]) end
for i = n + 2, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
local left = redis.call('LLEN', KEYS[2])
if left == 0 then redis.call('HDEL', KEYS[1], 'round_job') end
return left
"""

# KEYS: task. ARGV: field, value. Sets it unless it holds that value: 1 when it changed.
_ONCE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class CiState:
    """The CI fixes of a task: how many ran, the last one's fingerprint, the failure to fix."""

    fixes: int
    fingerprint: str | None
    failure: dict[str, Any] | None
    sha: str | None = None  # the head commit the last CI fix was for


@dataclass(frozen=True, slots=True)
class Added:
    """What storing one feedback item did: stored (False: seen before), and queued a job."""

    added: bool
    queued: bool


@dataclass(frozen=True, slots=True)
class Round:
    """A round's number (1 for the first) and its feedback items, oldest first."""

    number: int
    items: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class RoundsState:
    """What a task's rounds hold as read at one moment: finished, running and pending."""

    finished: list[dict[str, Any]]  # the rounds' records, oldest first
    running: list[dict[str, Any]]  # the items of the round that runs (empty: none runs)
    pending: list[dict[str, Any]]  # the feedback waiting for the next round


class ReviewStore:
    """Stores review feedback per task and hands it to rounds (see the module docstring)."""

    def __init__(self, redis: Client, keys: Keys, *, jobs: JobQueue, ttl_seconds: int) -> None:
        self._redis: Any = redis
        self._keys = keys
        self._jobs = jobs
        self._ttl_ms = ttl_seconds * 1000
        self._effects = Effects(redis, keys)
        self._take = register_script(redis, _TAKE)
        self._close = register_script(redis, _CLOSE)
        self._drop = register_script(redis, _DROP)
        self._rewrite = register_script(redis, _REWRITE)
        self._once = register_script(redis, _ONCE)

    async def add(
        self, task_id: str, item: dict[str, Any], *, feedback_id: str | None, now_ms: int
    ) -> Added:
        """Store ``item`` for the next round unless ``feedback_id`` was stored before."""
        k = self._keys
        keys = [k.task(task_id), k.review_seen(task_id), k.review_pending(task_id)]
        keys.append(k.effects(task_id))
        args = [
            feedback_id or "", json.dumps(item), now_ms, self._ttl_ms, self._jobs.key,
            self._jobs.message(task_id, Phase.ROUND), task_id,
        ]  # fmt: skip
        added, queued, _ = await self._with_effects(task_id, _ADD, keys, args)
        return Added(bool(added), bool(queued))

    async def take(self, task_id: str) -> Round:
        """The pending feedback as the next round (or the round taken before, again)."""
        k = self._keys
        keys = [k.task(task_id), k.review_pending(task_id), k.review_current(task_id)]
        number, items = await self._take(keys=keys, args=[self._ttl_ms])
        return Round(int(number), [json.loads(raw) for raw in items])

    async def close(self, task_id: str, record: dict[str, Any] | None) -> None:
        """End the running round, kept as ``record`` among the task's rounds."""
        keys = [self._keys.review_current(task_id), self._keys.review_rounds(task_id)]
        args = [json.dumps(record) if record is not None else "", self._ttl_ms]
        await self._close(keys=keys, args=args)

    async def next_round(self, task_id: str) -> bool:
        """Once the task is delivered again: queue a round if feedback waits (True), else none."""
        k = self._keys
        keys = [k.task(task_id), k.review_pending(task_id), k.effects(task_id)]
        args = [self._ttl_ms, self._jobs.key, self._jobs.message(task_id, Phase.ROUND), task_id]
        queued, _ = await self._with_effects(task_id, _NEXT, keys, args)
        return bool(queued)

    async def drop(self, task_id: str) -> int:
        """Forget the pending feedback and the round job; how many items were dropped."""
        keys = [self._keys.task(task_id), self._keys.review_pending(task_id)]
        return int(await self._drop(keys=keys, args=[]))

    async def rounds(self, task_id: str) -> list[dict[str, Any]]:
        """The task's finished rounds, oldest first."""
        rows: list[str] = await self._redis.lrange(self._keys.review_rounds(task_id), 0, -1)
        return [json.loads(row) for row in rows]

    async def pending(self, task_id: str) -> list[dict[str, Any]]:
        """The feedback waiting for the next round, oldest first."""
        rows: list[str] = await self._redis.lrange(self._keys.review_pending(task_id), 0, -1)
        return [json.loads(row) for row in rows]

    async def overview(self, task_id: str) -> RoundsState:
        """The finished rounds, the running round's items and the pending ones, in one trip."""
        k = self._keys
        lists = (k.review_rounds(task_id), k.review_current(task_id), k.review_pending(task_id))
        replies = await batch(self._redis, [[("LRANGE", key, 0, -1) for key in lists]])
        finished, running, pending = ([json.loads(row) for row in rows] for rows in replies)
        return RoundsState(finished, running, pending)

    async def state(self, task_id: str) -> tuple[int | None, int]:
        """When feedback last arrived (ms, None if never) and how many rounds ran."""
        at, done = await self._redis.hmget(
            self._keys.task(task_id), ["feedback_at", "review_rounds"]
        )
        return (int(at) if at else None), int(done or 0)

    async def mark_capped(self, task_id: str) -> bool:
        """True the first time only: the one comment saying ``max_rounds`` was reached."""
        return bool(await self._redis.hsetnx(self._keys.task(task_id), "rounds_capped", "1"))

    async def rewrite(
        self, task_id: str, *, remove: list[dict[str, Any]], add: list[dict[str, Any]]
    ) -> int:
        """Replace pending items (as :meth:`pending` gave them); how many remain pending."""
        keys = [self._keys.task(task_id), self._keys.review_pending(task_id)]
        args = [len(remove), *(json.dumps(i) for i in remove), *(json.dumps(i) for i in add)]
        return int(await self._rewrite(keys=keys, args=args))

    async def ci_state(self, task_id: str) -> CiState:
        """How many CI fixes ran, the last one's fingerprint, the failure ``fix-ci`` would fix."""
        fixes, fingerprint, failure, sha = await self._redis.hmget(
            self._keys.task(task_id), ["ci_fixes", "ci_fingerprint", "ci_failure", "ci_sha"]
        )
        found = json.loads(failure) if failure else None
        return CiState(int(fixes or 0), fingerprint or None, found, sha or None)

    async def note_failure(self, task_id: str, item: dict[str, Any]) -> None:
        """Remember the latest failure of the task's checks, for ``@hookagent fix-ci``."""
        await self._redis.hset(self._keys.task(task_id), "ci_failure", json.dumps(item))

    async def count_ci_fix(self, task_id: str, fingerprint: str, sha: str) -> None:
        """One more CI fix, of the failure ``fingerprint`` on head commit ``sha``."""
        key = self._keys.task(task_id)
        commands = [
            ("HINCRBY", key, "ci_fixes", 1),
            ("HSET", key, "ci_fingerprint", fingerprint, "ci_sha", sha),
        ]
        await batch(self._redis, [commands])

    async def once(self, task_id: str, what: str, value: str) -> bool:
        """True when ``what`` did not yet hold ``value`` (now it does): say a thing once."""
        return bool(await self._once(keys=[self._keys.task(task_id)], args=[f"said_{what}", value]))

    async def _with_effects(self, task_id: str, text: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script that may record effects (its last reply), then apply them.

        The task is entered as unsettled before the script, so a death before the effects
        are applied leaves them to the sweep, as for a status change.
        """
        score, begin = self._effects.begin_command(task_id)
        _, reply = await batch(
            self._redis, [[begin]], [[script_command(text, keys, args)]], raise_on_error=False
        )
        if isinstance(reply, ResponseError):
            await self._effects.end(task_id, score)
            if str(reply).startswith("NOTFOUND"):
                raise TaskNotFound(f"no task {quoted(task_id)} (unknown or expired)")
            raise reply
        await self._effects.settle(task_id, reply[-1], score=score)
        return reply

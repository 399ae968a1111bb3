"""Task records: one hash per task, a status history list, and listing indexes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hookagent.errors import ConflictError, FencedOut, TaskNotFound, quoted
from hookagent.keys import Keys
from hookagent.models import (
    START,
    TRANSITIONS,
    Action,
    NewTask,
    Phase,
    StatusChange,
    Task,
    TaskStatus,
    new_task_id,
    utc_iso,
)
from hookagent.store.queue import JobQueue
from hookagent.store.refs import Marks

# One script moves a task between statuses. Modes:
#   claim - a worker starts an attempt: new lease token, attempt + 1
#   fence - a worker writes: only while it still holds the lease token
#   free  - anyone (the API): only the allowed from-statuses are checked; the lease is dropped
# The task's own keys (hash, history, log) share one slot.
# Every change is also a log entry of kind ``status`` (a one-line chunk): followers see
# status changes in order with the output, on the same cursor. ``allowed`` and the new
# status come from the one transition table (models.TRANSITIONS). A real change (not a
# reclaimed job restarting its phase) also appends an event to the outbox, KEYS[4], in the
# same step: no change can be recorded without its notification, and nothing is sent from
# inside a run. KEYS[5] is the capped board stream (keys.events): one entry per change, so a
# live board XREADs one stream instead of every task's log. With a sixth key (the job
# stream) it also queues the job message ARGV[8] (JSON, built by store/queue.py) in the same
# step, so an approval cannot be recorded without its execution job. The outbox, the board
# stream and the job stream are other slots: a Redis Cluster deployment must co-locate them
# with the tasks (as it must for intake).
_TRANSITION = """
local mode, token, new_status, allowed = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, reason, ttl, job = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local log_ttl, task_id = tonumber(ARGV[9]), ARGV[10]
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return redis.error_reply('NOTFOUND') end
if mode == 'fence' and redis.call('HGET', KEYS[1], 'lease_token') ~= token then
  return redis.error_reply('FENCED')
end
if allowed ~= '' and not string.find(',' .. allowed .. ',', ',' .. cur .. ',', 1, true) then
  return redis.error_reply('CONFLICT ' .. cur)
end
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
if mode == 'claim' then
  attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
  redis.call('HSET', KEYS[1], 'lease_token', token)
elseif mode == 'free' then
  redis.call('HDEL', KEYS[1], 'lease_token')
end
redis.call('HSET', KEYS[1], 'status', new_status, 'updated_at', now)
for i = 11, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
local record = {status = new_status, at = now, attempt = attempt}
if reason ~= '' then record['reason'] = reason end
redis.call('RPUSH', KEYS[2], cjson.encode(record))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
if redis.call('HEXISTS', KEYS[1], 'log_capped') == 0 then
  local seq = tonumber(redis.call('HGET', KEYS[1], 'log_seq') or '0')
  local msg = '[system] status ' .. new_status
  if reason ~= '' then msg = msg .. ': ' .. reason end
  -- a one-line chunk in store/logs.py's format, its status as the seventh column
  redis.call('XADD', KEYS[3], '0-' .. (seq + 1), 'n', 1, 'c', cjson.encode(
    {attempt, {msg}, {now, 1}, {'system', 1}, {'status', 1}, {'', 1}, new_status}))
  redis.call('HSET', KEYS[1], 'log_seq', seq + 1)
  redis.call('PEXPIRE', KEYS[3], log_ttl)
end
if cur ~= new_status then
  redis.call('XADD', KEYS[4], '*', 'task_id', task_id, 'event', new_status, 'previous', cur,
    'at', now, 'attempt', attempt, 'reason', reason)
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', 1000, '*', 'task_id', task_id,
  'status', new_status, 'previous', cur, 'at', now)
if KEYS[6] then
  redis.call('XADD', KEYS[6], '*', unpack(cjson.decode(job)))
end
return {cur, attempt}
"""

# A new task in one step: its hash, history, both indexes, its first job and its dedupe
# marks (delivery id, incident ref), and the ``created`` event in the outbox. The marks
# are compare-and-set against what intake read (ARGV[7], ARGV[8]; '' = absent), so two
# deliveries racing for one incident create one task, and a stale mark (its task gone) is
# replaced. Nothing is written unless everything is: a failure anywhere before this call
# leaves no mark behind, and the sender's retry creates the task. Spans several slots: on
# a Redis Cluster the intake keys (and the outbox) need one node.
_CREATE = """
local task_id, ttl, score, record = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local job, dedupe_ttl = ARGV[5], tonumber(ARGV[6])
local n, delivery, ref = 7, nil, nil
if ARGV[9] == '1' then n = n + 1; delivery = KEYS[n] end
if ARGV[10] == '1' then n = n + 1; ref = KEYS[n] end
if delivery and (redis.call('GET', delivery) or '') ~= ARGV[7] then return 0 end
if ref and (redis.call('GET', ref) or '') ~= ARGV[8] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 11))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('RPUSH', KEYS[2], record)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[3], score, task_id)
redis.call('ZADD', KEYS[4], score, task_id)
redis.call('XADD', KEYS[5], '*', unpack(cjson.decode(job)))
if delivery then redis.call('SET', delivery, task_id, 'PX', dedupe_ttl) end
if ref then redis.call('SET', ref, task_id, 'PX', ttl) end
redis.call('XADD', KEYS[6], '*', 'task_id', task_id, 'event', 'created', 'previous', '',
  'at', redis.call('HGET', KEYS[1], 'created_at') or '', 'attempt', 0, 'reason', '')
redis.call('XADD', KEYS[7], 'MAXLEN', '~', 1000, '*', 'task_id', task_id, 'status', 'queued')
return 1
"""


_SET_FENCED = """
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


# One approver's vote on a plan that needs several: only while the task waits for approval,
# on the task's slot, so a vote can never land on a task that moved on (or on the next plan:
# the worker clears the set before a new plan becomes pending). Returns whether the vote is
# new, and every approver so far.
_VOTE = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return redis.error_reply('NOTFOUND') end
if cur ~= 'pending_approval' then return redis.error_reply('CONFLICT ' .. cur) end
local added = redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
return {added, redis.call('SMEMBERS', KEYS[2])}
"""


def _flat(fields: Mapping[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


def created_ms(task_id: str) -> int:
    """The creation time encoded in a task id, used as the index score."""
    parts = task_id.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0


class TaskStore:
    """Creates, reads, lists and moves tasks between statuses."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        jobs: JobQueue,
        ttl_seconds: int,
        log_ttl_seconds: int = 86400,
        dedupe_ttl_seconds: int = 86400,
    ) -> None:
        # Typed loosely on purpose: redis-py's annotations differ from 5.x to 8.x, and with
        # decode_responses=True every reply here is str.
        self._redis: Any = redis
        self._keys = keys
        self._jobs = jobs
        self._ttl_ms = ttl_seconds * 1000
        self._log_ttl_ms = log_ttl_seconds * 1000
        self._dedupe_ttl_ms = dedupe_ttl_seconds * 1000
        self._transition = redis.register_script(_TRANSITION)
        self._create = redis.register_script(_CREATE)
        self._set_fenced = redis.register_script(_SET_FENCED)
        self._vote = redis.register_script(_VOTE)

    async def create(self, new: NewTask, *, task_id: str | None = None) -> Task:
        """Store a new task in ``queued`` with its indexes and planning job, in one step."""
        task = await self.create_marked(new, Marks(source=new.source), task_id=task_id)
        if task is None:  # no marks to compare, so nothing can have raced it
            raise RuntimeError("task creation without marks was refused")
        return task

    async def create_marked(
        self, new: NewTask, marks: Marks, *, task_id: str | None = None
    ) -> Task | None:
        """Like :meth:`create`, setting the delivery and incident marks in the same step.

        Only if the marks still hold what intake read (``marks.seen_*``); None means another
        delivery got there first, and nothing was written.
        """
        now = utc_iso()
        task = Task(
            task_id=task_id or new_task_id(),
            status=TaskStatus.QUEUED,
            created_at=now,
            updated_at=now,
            **new.model_dump(),
        )
        k, tid = self._keys, task.task_id
        keys = [
            k.task(tid),
            k.history(tid),
            k.tasks_by_created(),
            k.tasks_by_status(task.status),
            self._jobs.key,
            k.outbox(),
            k.events(),
        ]
        if marks.delivery:
            keys.append(k.delivery(marks.source, marks.delivery))
        if marks.ref:
            keys.append(k.ref(marks.source, marks.ref))
        record = StatusChange(status=TaskStatus.QUEUED, at=now).model_dump_json(exclude_none=True)
        args = [
            tid,
            self._ttl_ms,
            created_ms(tid),
            record,
            self._jobs.message(tid, Phase.PLAN),
            self._dedupe_ttl_ms,
            marks.seen_delivery or "",
            marks.seen_ref or "",
            "1" if marks.delivery else "0",
            "1" if marks.ref else "0",
            *_flat(task.to_hash()),
        ]
        created = await self._create(keys=keys, args=args)
        return task if created == 1 else None

    async def get(self, task_id: str) -> Task:
        """The task, or :class:`TaskNotFound`."""
        data: dict[str, str] = await self._redis.hgetall(self._keys.task(task_id))
        if not data:
            raise TaskNotFound(f"no task {quoted(task_id)} (unknown or expired)")
        return Task.from_hash(data)

    async def history(self, task_id: str) -> list[StatusChange]:
        """The task's status changes, oldest first."""
        rows: list[str] = await self._redis.lrange(self._keys.history(task_id), 0, -1)
        return [StatusChange.model_validate_json(row) for row in rows]

    async def lease_token(self, task_id: str) -> str | None:
        """The token of the attempt that currently holds the task, if any."""
        token: str | None = await self._redis.hget(self._keys.task(task_id), "lease_token")
        return token

    async def claim(self, task_id: str, *, token: str, phase: Phase) -> int:
        """Start a worker attempt of ``phase``: take the lease token; returns the attempt."""
        _, attempt = await self._run("claim", task_id, token, START[phase], None, {}, None)
        return attempt

    async def advance(
        self,
        task_id: str,
        action: Action,
        *,
        token: str | None = None,
        reason: str | None = None,
        fields: Mapping[str, Any] | None = None,
        enqueue: Phase | None = None,
    ) -> TaskStatus:
        """Apply ``action`` (fenced by ``token`` when given); returns the previous status.

        ``enqueue`` queues a job of that phase in the same atomic step.
        """
        mode = "fence" if token is not None else "free"
        old, _ = await self._run(mode, task_id, token or "", action, reason, fields or {}, enqueue)
        return old

    async def set_fenced(self, task_id: str, token: str, fields: Mapping[str, str]) -> None:
        """Set fields while ``token`` still holds the task (no status change)."""
        if not await self._set_fenced(
            keys=[self._keys.task(task_id)], args=[token, *_flat(fields)]
        ):
            raise FencedOut(f"task {task_id} is held by another attempt")

    async def agent_process(self, task_id: str) -> tuple[str | None, str | None]:
        """Host and process group of the agent the latest attempt started."""
        host, pgid = await self._redis.hmget(self._keys.task(task_id), ["agent_host", "agent_pgid"])
        return host, pgid

    async def save_progress(self, task_id: str, progress: dict[str, Any]) -> None:
        """Replace the task's progress document."""
        await self._redis.set(self._keys.progress(task_id), json.dumps(progress), px=self._ttl_ms)

    async def progress(self, task_id: str) -> dict[str, Any] | None:
        """The task's latest progress document, if any run reported one."""
        raw: str | None = await self._redis.get(self._keys.progress(task_id))
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        return data

    async def add_plan(self, task_id: str, plan: str) -> None:
        """Keep a plan in the task's plan history (revisions keep the earlier ones)."""
        key = self._keys.plans(task_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, plan)
            pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()

    async def plans(self, task_id: str) -> list[str]:
        """Every plan produced for the task, oldest first."""
        plans: list[str] = await self._redis.lrange(self._keys.plans(task_id), 0, -1)
        return plans

    async def vote(self, task_id: str, approver: str) -> tuple[bool, list[str]]:
        """Record ``approver``'s approval of the pending plan: (new vote?, all approvers)."""
        keys = [self._keys.task(task_id), self._keys.approvals(task_id)]
        try:
            added, members = await self._vote(keys=keys, args=[approver, self._ttl_ms])
        except ResponseError as exc:
            raise _translate(task_id, str(exc)) from None
        return bool(added), sorted(members)

    async def approvers(self, task_id: str) -> list[str]:
        """Who approved the task's current plan so far (sorted)."""
        return sorted(await self._redis.smembers(self._keys.approvals(task_id)))

    async def clear_approvals(self, task_id: str) -> None:
        """Forget the votes on the previous plan (a new plan needs new approvals)."""
        await self._redis.delete(self._keys.approvals(task_id))

    async def add_feedback(self, task_id: str, feedback: str) -> None:
        """Keep a reviewer's feedback in the task's feedback history."""
        key = self._keys.feedbacks(task_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, feedback)
            pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()

    async def feedbacks(self, task_id: str) -> list[str]:
        """Every feedback the task's earlier plans answered, oldest first."""
        items: list[str] = await self._redis.lrange(self._keys.feedbacks(task_id), 0, -1)
        return items

    async def count(self, status: TaskStatus) -> int:
        """How many tasks the status index holds (ZCARD; an expired task counts until listed)."""
        return int(await self._redis.zcard(self._keys.tasks_by_status(status)))

    async def counts(self) -> dict[TaskStatus, int]:
        """How many tasks each status index holds (expired ones linger until listed)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for status in TaskStatus:
                pipe.zcard(self._keys.tasks_by_status(status))
            sizes: list[int] = await pipe.execute()
        return dict(zip(TaskStatus, sizes, strict=True))

    async def list(self, *, status: TaskStatus | None, limit: int) -> list[Task]:
        """Newest first, optionally only those in ``status``."""
        index = self._keys.tasks_by_status(status) if status else self._keys.tasks_by_created()
        ids: list[str] = await self._redis.zrevrange(index, 0, limit - 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.hgetall(self._keys.task(tid))
            rows: list[dict[str, str]] = await pipe.execute()
        expired = [tid for tid, row in zip(ids, rows, strict=True) if not row]
        if expired:
            # Hashes expire by TTL; their index entries are dropped when a reader meets them.
            await self._redis.zrem(index, *expired)
        tasks = [Task.from_hash(row) for row in rows if row]
        return [t for t in tasks if status is None or t.status == status]

    async def _run(
        self,
        mode: str,
        task_id: str,
        token: str,
        action: Action,
        reason: str | None,
        fields: Mapping[str, Any],
        enqueue: Phase | None = None,
    ) -> tuple[TaskStatus, int]:
        k, rule = self._keys, TRANSITIONS[action]
        args: list[str] = [
            mode,
            token,
            rule.to.value,
            ",".join(sorted(s.value for s in rule.allowed)),
            utc_iso(),
            reason or "",
            str(self._ttl_ms),
            self._jobs.message(task_id, enqueue) if enqueue else "",
            str(self._log_ttl_ms),
            task_id,
        ]
        for name, value in fields.items():
            args += [name, "" if value is None else str(value)]
        keys = [k.task(task_id), k.history(task_id), k.logs(task_id), k.outbox(), k.events()]
        if enqueue:
            keys.append(self._jobs.key)
        try:
            old, attempt = await self._transition(keys=keys, args=args)
        except ResponseError as exc:
            raise _translate(task_id, str(exc)) from None
        old_status = TaskStatus(old)
        if old_status != rule.to:
            score = created_ms(task_id)
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(k.tasks_by_status(old_status), task_id)
                pipe.zadd(k.tasks_by_status(rule.to), {task_id: score})
                await pipe.execute()
        return old_status, int(attempt)


def _translate(task_id: str, reply: str) -> Exception:
    if reply.startswith("NOTFOUND"):
        return TaskNotFound(f"no task {quoted(task_id)} (unknown or expired)")
    if reply.startswith("FENCED"):
        return FencedOut(f"task {task_id} is held by another attempt")
    if reply.startswith("CONFLICT"):
        current = reply.partition(" ")[2]
        return ConflictError(f"task {task_id} is {current}")
    return RuntimeError(reply)

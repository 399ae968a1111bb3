"""Task records: one hash per task, a status history list, and listing indexes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from redis.exceptions import ResponseError

from hookagent.errors import ConflictError, FencedOut, TaskNotFound, quoted
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
from hookagent.store.client import Client, batch, register_script, script_command
from hookagent.store.effects import Effects
from hookagent.store.keys import Keys
from hookagent.store.logs import CHUNK_LUA
from hookagent.store.queue import JobQueue
from hookagent.store.refs import Marks

# One script moves a task between statuses. Modes:
#   claim - a worker starts an attempt: new lease token, attempt + 1
#   fence - a worker writes: only while it still holds the lease token
#   free  - anyone (the API): only the allowed from-statuses are checked; the lease is dropped
# Every change is also a log entry of kind ``status`` (a one-line chunk, CHUNK_LUA's
# ``line_chunk`` with the status column): followers see
# status changes in order with the output, on the same cursor. ``allowed`` and the new
# status come from the one transition table (models.TRANSITIONS). The script touches only
# the task's own slot (hash, history, log, effects list). What the change means elsewhere it
# records as effects in the same atomic step (store/effects.py), applied right after: a real
# change (not a reclaimed job restarting its phase) adds an outbox event and moves the task
# between the status indexes; every change adds an entry to the capped board stream
# (keys.events); and with a job message (ARGV[8], JSON built by store/queue.py) the job is
# queued. So no change is recorded without its notification, and an approval cannot be
# recorded without its execution job, on one server or a Redis Cluster alike. Returns the
# previous status, the attempt and every effect still pending for the task.
_EFFECT = """
local function effect(e)
  e['id'] = ARGV[10] .. ':' .. redis.call('HINCRBY', KEYS[1], 'effect_seq', 1)
  redis.call('RPUSH', KEYS[EFFECTS], cjson.encode(e))
end
"""

_TRANSITION = (
    _EFFECT.replace("EFFECTS", "4")
    + CHUNK_LUA
    + """
local mode, token, new_status, allowed = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, reason, ttl, job = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local log_ttl, task_id = tonumber(ARGV[9]), ARGV[10]
local outbox, board, jobs, by_status, score = ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15]
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
for i = 16, #ARGV, 2 do
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
  seq = add_chunk(KEYS[3], seq, line_chunk(attempt, msg, now, 'system', 'status', new_status))
  redis.call('HSET', KEYS[1], 'log_seq', seq)
  redis.call('PEXPIRE', KEYS[3], log_ttl)
end
if cur ~= new_status then
  effect({x = outbox, f = {'task_id', task_id, 'event', new_status, 'previous', cur,
    'at', now, 'attempt', tostring(attempt), 'reason', reason}})
  effect({zrem = {by_status .. cur}, zadd = {by_status .. new_status}, m = task_id, s = score})
end
effect({x = board, max = 1000, f = {'task_id', task_id, 'status', new_status, 'previous', cur,
  'at', now}})
if job ~= '' then effect({x = jobs, f = cjson.decode(job)}) end
redis.call('PEXPIRE', KEYS[4], ttl)
return {cur, attempt, redis.call('LRANGE', KEYS[4], 0, -1)}
"""
)

# Intake in three steps, none spanning two slots, so that two deliveries racing for one
# incident create one task and a failure anywhere leaves nothing that blocks the sender's
# retry:
#   1. _DRAFT writes the task's hash (with ``intake``: the mark keys it must own) and
#      history; no job, no index entry, no event yet.
#   2. Each mark (delivery id, incident ref) is compare-and-set against what intake read
#      (_MARK). A mark now points at a task that exists, so a racing delivery sees it taken.
#      Losing one discards the draft (_DISCARD); a mark left pointing at a discarded task is
#      stale (its task does not exist) and the next delivery replaces it.
#   3. _SEAL drops ``intake`` and records the effects: both indexes, the planning job, the
#      ``created`` outbox event and the board entry.
# The task is unsettled from before step 1: if the process dies, the sweep seals a draft
# whose marks all point at it, and discards one whose marks do not.
_DRAFT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'intake', ARGV[3], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]))
return 1
"""

_MARK = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
return 1
"""

_DISCARD = """
if redis.call('HEXISTS', KEYS[1], 'intake') == 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""

# Returns 0 when the draft is gone (discarded); else (sealed now or before) 1 and the
# effects still pending.
_SEAL = (
    _EFFECT.replace("EFFECTS", "2")
    + """
if redis.call('HEXISTS', KEYS[1], 'intake') == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  return {1, redis.call('LRANGE', KEYS[2], 0, -1)}
end
local task_id, ttl, score = ARGV[10], tonumber(ARGV[1]), ARGV[2]
redis.call('HDEL', KEYS[1], 'intake')
effect({zadd = {ARGV[3], ARGV[4]}, m = task_id, s = score})
effect({x = ARGV[5], f = cjson.decode(ARGV[6])})
effect({x = ARGV[7], f = {'task_id', task_id, 'event', 'created', 'previous', '',
  'at', redis.call('HGET', KEYS[1], 'created_at') or '', 'attempt', '0', 'reason', ''}})
effect({x = ARGV[8], max = 1000, f = {'task_id', task_id, 'status', 'queued'}})
redis.call('PEXPIRE', KEYS[2], ttl)
return {1, redis.call('LRANGE', KEYS[2], 0, -1)}
"""
)


_SET_FENCED = """
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


# One approver's vote on a plan that needs several: only in a status approval may leave
# (ARGV[3], the APPROVE row of models.TRANSITIONS), on the task's slot, so a vote can never
# land on a task that moved on (or on the next plan: the worker clears the set before a new
# plan becomes pending). Returns whether the vote is new, and every approver so far.
_VOTE = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return redis.error_reply('NOTFOUND') end
if not string.find(',' .. ARGV[3] .. ',', ',' .. cur .. ',', 1, true) then
  return redis.error_reply('CONFLICT ' .. cur)
end
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
        redis: Client,
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
        self.effects = Effects(redis, keys)
        self._transition = register_script(redis, _TRANSITION)
        self._draft = register_script(redis, _DRAFT)
        self._mark = register_script(redis, _MARK)
        self._discard = register_script(redis, _DISCARD)
        self._seal = register_script(redis, _SEAL)
        self._set_fenced = register_script(redis, _SET_FENCED)
        self._vote = register_script(redis, _VOTE)

    async def create(self, new: NewTask, *, task_id: str | None = None) -> Task:
        """Store a new task in ``queued`` with its indexes and planning job."""
        task = await self.create_marked(new, Marks(source=new.source), task_id=task_id)
        if task is None:  # no marks to compare, so nothing can have raced it
            raise RuntimeError("task creation without marks was refused")
        return task

    async def create_marked(
        self, new: NewTask, marks: Marks, *, task_id: str | None = None
    ) -> Task | None:
        """Like :meth:`create`, claiming the delivery and incident marks for the task.

        Only if the marks still hold what intake read (``marks.seen_*``); None means another
        delivery got there first, and no task was created (see _DRAFT for the steps).
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
        claims: list[tuple[str, str | None, int]] = []  # mark key, what intake saw, TTL
        if marks.delivery:
            key = k.delivery(marks.source, marks.delivery)
            claims.append((key, marks.seen_delivery, self._dedupe_ttl_ms))
        if marks.ref:
            claims.append((k.ref(marks.source, marks.ref), marks.seen_ref, self._ttl_ms))
        record = StatusChange(status=TaskStatus.QUEUED, at=now).model_dump_json(exclude_none=True)
        intake = json.dumps([key for key, _, _ in claims])
        score, begin = self.effects.begin_command(tid)
        draft = script_command(
            _DRAFT,
            [k.task(tid), k.history(tid)],
            [self._ttl_ms, record, intake, *_flat(task.to_hash())],
        )
        # One round trip on one server; the unsettled entry reaches it before the draft.
        began, drafted = await batch(self._redis, [[begin]], [[draft]], raise_on_error=False)
        if isinstance(drafted, Exception):
            raise drafted
        if drafted != 1:
            raise ConflictError(f"task {tid} exists already")
        if isinstance(began, Exception):  # a draft no sweep would find: take it back
            await self._discard(keys=[k.task(tid), k.history(tid)])
            raise began
        # All marks in one round trip, in order. A mark set after another was lost points
        # at the discarded draft: stale, and the next delivery replaces it (see _DRAFT).
        marked = await batch(
            self._redis,
            [
                [
                    script_command(_MARK, [key], [seen or "", tid, ttl_ms])
                    for key, seen, ttl_ms in claims
                ]
            ],
        )
        if not all(marked):
            await self._discard(keys=[k.task(tid), k.history(tid)])
            await self.effects.end(tid, score)
            return None
        if not await self._seal_draft(tid, score):
            await self.effects.end(tid, score)
            return None
        return task

    async def settle_stale(self, *, older_than_s: float, limit: int = 100) -> int:
        """Finish what processes that died mid-change left (run by every worker's heartbeat).

        Applies the effects of tasks unsettled for ``older_than_s``; a draft from an intake
        that died is sealed if its marks all point at it, else discarded. Returns how many
        tasks it looked at.
        """
        stale = await self.effects.unsettled(int(older_than_s * 1000), limit)
        for tid, score in stale:
            intake: str | None = await self._redis.hget(self._keys.task(tid), "intake")
            if intake is not None:
                owners = [await self._redis.get(key) for key in json.loads(intake)]
                if all(owner == tid for owner in owners) and await self._seal_draft(tid, score):
                    continue
                await self._discard(keys=[self._keys.task(tid), self._keys.history(tid)])
                await self.effects.end(tid, score)
            else:
                await self.effects.settle(tid, score=score)
        return len(stale)

    async def _seal_draft(self, tid: str, score: float) -> bool:
        k = self._keys
        sealed = await self._seal(
            keys=[k.task(tid), k.effects(tid)],
            args=[
                self._ttl_ms,
                created_ms(tid),
                k.tasks_by_created(),
                k.tasks_by_status(TaskStatus.QUEUED),
                self._jobs.key,
                self._jobs.message(tid, Phase.PLAN),
                k.outbox(),
                k.events(),
                "",
                tid,
            ],
        )
        if sealed == 0:
            return False
        await self.effects.settle(tid, sealed[1], score=score)
        return True

    async def get(self, task_id: str) -> Task:
        """The task, or :class:`TaskNotFound`."""
        data: dict[str, str] = await self._redis.hgetall(self._keys.task(task_id))
        if not data:
            raise TaskNotFound(f"no task {quoted(task_id)} (unknown or expired)")
        return Task.from_hash(data)

    async def get_for(self, task_id: str, action: Action) -> Task:
        """The task; :class:`ConflictError` when ``action`` may not leave its status."""
        task = await self.get(task_id)
        if task.status not in TRANSITIONS[action].allowed:
            raise ConflictError(f"task {task_id} is {task.status}")
        return task

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

        ``enqueue`` records a job of that phase in the same atomic step (queued right after).
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
            args = [approver, self._ttl_ms, _allowed(Action.APPROVE)]
            added, members = await self._vote(keys=keys, args=args)
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
            _allowed(action),
            utc_iso(),
            reason or "",
            str(self._ttl_ms),
            self._jobs.message(task_id, enqueue) if enqueue else "",
            str(self._log_ttl_ms),
            task_id,
        ]
        args += [
            k.outbox(),
            k.events(),
            self._jobs.key,
            k.tasks_by_status(""),
            str(created_ms(task_id)),
        ]
        for name, value in fields.items():
            args += [name, "" if value is None else str(value)]
        keys = [k.task(task_id), k.history(task_id), k.logs(task_id), k.effects(task_id)]
        # Entered before the script, so a death after it is found; one round trip for both
        # on one server. Should the entry fail where the script did not, the change is made
        # and this process settles it all the same.
        score, begin = self.effects.begin_command(task_id)
        run = script_command(_TRANSITION, keys, args)
        _, reply = await batch(self._redis, [[begin]], [[run]], raise_on_error=False)
        if isinstance(reply, ResponseError):
            # Nothing recorded; ended unless another change's effects wait (the sweep's then).
            if not await self._redis.llen(k.effects(task_id)):
                await self.effects.end(task_id, score)
            raise _translate(task_id, str(reply)) from None
        old, attempt, pending = reply
        await self.effects.settle(task_id, pending, score=score)
        return TaskStatus(old), int(attempt)


def _allowed(action: Action) -> str:
    """The statuses ``action`` may leave (its models.TRANSITIONS row), as the scripts read them."""
    return ",".join(sorted(s.value for s in TRANSITIONS[action].allowed))


def _translate(task_id: str, reply: str) -> Exception:
    if reply.startswith("NOTFOUND"):
        return TaskNotFound(f"no task {quoted(task_id)} (unknown or expired)")
    if reply.startswith("FENCED"):
        return FencedOut(f"task {task_id} is held by another attempt")
    if reply.startswith("CONFLICT"):
        current = reply.partition(" ")[2]
        return ConflictError(f"task {task_id} is {current}")
    return RuntimeError(reply)

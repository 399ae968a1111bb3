"""Effects: a task script's writes to other slots, recorded on the task's slot, applied after.

A Lua script may only touch keys of one Redis Cluster slot, and a task's keys share the
task's hash tag. So the task scripts (store/tasks.py) do not write the job stream, the
outbox, the board stream or the status indexes themselves: in the same atomic step as the
status change they append *effects* to the task's own list (``keys.effects``), and the store
applies them right after, in order, then drops them. The change and its consequences are
recorded together; applying them is at-least-once, made exactly-once per target: each effect
has an id (task id + a counter in the task hash), and one script on the target stream's slot
adds the entry only if that id is not yet in the stream's ``applied`` set. Index moves are
ZADD/ZREM, idempotent as they are.

A process that dies between the script and the end of ``settle`` leaves effects behind. The
task is entered in ``keys.unsettled`` *before* its script runs and removed after its effects
are applied (unless another change re-entered it since), so a sweep (``TaskStore.settle_stale``,
run by every worker) finds such a task and applies what is left. One code path for a single
server and a cluster: the test suite exercises it on both.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from hookagent.store.client import Client, Command, batch, register_script, script_command
from hookagent.store.keys import Keys

# How long an applied effect id is remembered: far beyond any sweep interval, so a re-applied
# effect is always recognised.
APPLIED_WINDOW_MS = 24 * 3600 * 1000

# Adds one stream entry unless its effect id was applied already; both keys on one slot.
# ARGV: effect id, now (ms), window (ms), MAXLEN (0: uncapped), then the entry's fields.
_APPLY = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local now, window, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if cap > 0 then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', cap, '*', unpack(ARGV, 5))
else
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5))
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('PEXPIRE', KEYS[2], window)
return 1
"""

# Leaves the task unsettled if another change entered it again since (another score). The
# comparison is for equality, not order: two changes in one millisecond, or on processes
# whose clocks disagree, must not remove each other's entry (scores carry a random fraction).
_END = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
"""


def now_ms() -> int:
    """Wall-clock milliseconds (the unsettled set's score; sweeps allow generous skew)."""
    return int(time.time() * 1000)


class Effects:
    """Applies the effects the task scripts record, and tracks tasks that may have some left."""

    def __init__(self, redis: Client, keys: Keys) -> None:
        self._redis: Any = redis
        self._keys = keys
        self._end = register_script(redis, _END)
        # The scores drawn in the current millisecond, so that none is drawn twice.
        self._drawn: tuple[int, set[float]] = (0, set())

    async def begin(self, task_id: str) -> float:
        """Enter the task as unsettled before a script records effects; returns the score."""
        score, command = self.begin_command(task_id)
        await self._redis.execute_command(*command)
        return score

    def begin_command(self, task_id: str) -> tuple[float, Command]:
        """:meth:`begin` as a command to batch ahead of the script (and its score)."""
        # Milliseconds for the sweep's age check, plus a random fraction that makes this
        # entry's score its own (see _END). A double near 1.8e12 holds only ~4,000 distinct
        # fractions a millisecond, so two changes in one could draw the same score (or one
        # rounded up into the next millisecond, which the sweep's bound leaves out): such a
        # draw is drawn again.
        while True:
            ms = now_ms()
            if self._drawn[0] != ms:
                self._drawn = (ms, set())
            score = ms + random.random()
            if score < ms + 1 and score not in self._drawn[1]:
                break
        self._drawn[1].add(score)
        return score, ("ZADD", self._keys.unsettled(), score, task_id)

    async def end(self, task_id: str, score: float) -> None:
        """Leave the unsettled set, unless another change entered the task since ``score``."""
        await self._end(keys=[self._keys.unsettled()], args=[task_id, score])

    async def settle(
        self, task_id: str, pending: list[str] | None = None, *, score: float | None = None
    ) -> None:
        """Apply the task's recorded effects (``pending``: the list, if just read).

        In order per target (one round trip on one server, the targets side by side on a
        cluster). With ``score``, the task then leaves the unsettled set (see :meth:`end`).
        """
        key = self._keys.effects(task_id)
        if pending is None:
            pending = await self._redis.lrange(key, 0, -1)
        if not pending and score is None:
            return
        by_target: dict[str, list[Command]] = {}
        for raw in pending:
            effect = json.loads(raw)
            by_target.setdefault(effect.get("x", "indexes"), []).extend(self._commands(effect))
        await batch(self._redis, list(by_target.values()))
        # Only once all applied: a pipeline runs on past an error, and an effect dropped from
        # the list unapplied would be lost. Both groups at once: an effect left in the list
        # once applied is skipped if met again. By value: a concurrent settle may have taken it.
        forget = [("LREM", key, 1, raw) for raw in pending]
        end = [] if score is None else [self._end_command(task_id, score)]
        await batch(self._redis, [forget, end])

    def _end_command(self, task_id: str, score: float) -> Command:
        return script_command(_END, [self._keys.unsettled()], [task_id, score])

    def _commands(self, effect: dict[str, Any]) -> list[Command]:
        """One effect as commands: a stream entry (once per effect id) or index moves."""
        if "x" in effect:
            stream: str = effect["x"]
            keys = [stream, self._keys.applied(stream)]
            args = [effect["id"], now_ms(), APPLIED_WINDOW_MS, effect.get("max", 0), *effect["f"]]
            return [script_command(_APPLY, keys, args)]
        member, score = effect["m"], float(effect["s"])
        return [("ZREM", index, member) for index in effect.get("zrem", [])] + [
            ("ZADD", index, score, member) for index in effect.get("zadd", [])
        ]

    async def unsettled(self, older_than_ms: int, limit: int) -> list[tuple[str, float]]:
        """Tasks entered before ``older_than_ms`` ago and not settled since, with their score."""
        # Scores are a millisecond plus a fraction below 1: entries of the bound's own
        # millisecond count too, so the bound is the next millisecond, exclusive.
        bound = f"({now_ms() - older_than_ms + 1}"
        rows = await self._redis.zrangebyscore(
            self._keys.unsettled(), "-inf", bound, 0, limit, withscores=True
        )
        return [(task_id, float(score)) for task_id, score in rows]

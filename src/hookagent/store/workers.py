"""The worker registry: each worker loop's heartbeat record, and which workers are alive.

Every few seconds a worker loop writes one hash (name, host, pid, start time, version, the
job it runs) and scores its name in a sorted set with the time of that heartbeat. The time
is the Redis server's, read inside the script, so workers and API servers on machines whose
clocks disagree still agree on who is alive. A record expires unless renewed, and every
heartbeat drops names older than that from the set, so a SIGKILLed worker vanishes by itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.exceptions import AuthenticationError, BusyLoadingError, RedisError, ResponseError

from hookagent.store.client import Client, register_script
from hookagent.store.keys import Keys

# One script so the record, its score and the pruning of the dead happen together, stamped
# with the server's clock (TIME before writes is allowed: scripts replicate their effects).
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'last_seen', string.format('%.3f', now), unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return tostring(now)
"""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a worker loop says about itself; ``last_seen`` (Redis time) is filled on reads."""

    name: str
    host: str
    pid: int
    started_at: str
    version: str
    task_id: str | None = None
    phase: str | None = None
    last_seen: float | None = None


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether Redis answered (else why not, in a few words) and how many workers live."""

    redis_error: str | None
    live_workers: int


class WorkerRegistry:
    """Heartbeats of worker loops, and the list of those heard from recently."""

    def __init__(self, redis: Client, keys: Keys, *, ttl_seconds: int) -> None:
        self._redis: Any = redis
        self._keys = keys
        self.ttl_seconds = ttl_seconds
        self._beat = register_script(redis, _BEAT)

    async def beat(self, info: WorkerInfo) -> float:
        """Write ``info`` as the worker's record, stamped now; returns that Redis time."""
        fields = {
            "name": info.name,
            "host": info.host,
            "pid": str(info.pid),
            "started_at": info.started_at,
            "version": info.version,
            # Written empty when idle (not deleted): the whole record is one HSET.
            "task_id": info.task_id or "",
            "phase": info.phase or "",
        }
        flat = [item for pair in fields.items() for item in pair]
        keys = [self._keys.worker(info.name), self._keys.workers_by_seen()]
        now: str = await self._beat(keys=keys, args=[self.ttl_seconds, info.name, *flat])
        return float(now)

    async def deregister(self, name: str) -> None:
        """Remove the worker at once (a clean shutdown), instead of letting it expire."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.worker(name))
            pipe.zrem(self._keys.workers_by_seen(), name)
            await pipe.execute()

    async def count_live(self, max_age: float) -> int:
        """How many workers sent a heartbeat within the last ``max_age`` seconds."""
        count: int = await self._redis.zcount(
            self._keys.workers_by_seen(), await self._now() - max_age, "+inf"
        )
        return count

    async def readiness(self, max_age: float, *, timeout: float) -> Readiness:
        """PING and count the live workers, within ``timeout`` seconds; never raises for Redis."""
        try:
            async with asyncio.timeout(timeout):
                await self._redis.ping()
                live = await self.count_live(max_age)
        except (RedisError, OSError, TimeoutError) as exc:
            return Readiness(redis_error=_failure(exc), live_workers=0)
        return Readiness(redis_error=None, live_workers=live)

    async def live(self, max_age: float) -> list[WorkerInfo]:
        """The workers heard from within the last ``max_age`` seconds, by name."""
        names: list[str] = await self._redis.zrangebyscore(
            self._keys.workers_by_seen(), await self._now() - max_age, "+inf"
        )
        if not names:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self._keys.worker(name))
            records: list[dict[str, str]] = await pipe.execute()
        # A record gone between the two reads was deregistered meanwhile: not alive.
        return sorted((_info(r) for r in records if r), key=lambda w: w.name)

    async def _now(self) -> float:
        seconds, micros = await self._redis.time()
        return int(seconds) + int(micros) / 1_000_000


def _failure(exc: BaseException) -> str:
    # The kind of failure only: a message can quote the URL, and with it a password.
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "unreachable (timed out)"
    if isinstance(exc, BusyLoadingError):
        return f"still loading its data ({name})"
    if isinstance(exc, AuthenticationError):
        return f"refused the credentials ({name})"
    if isinstance(exc, ResponseError):
        return f"answered with an error ({name})"
    return f"unreachable ({name})"


def _info(record: dict[str, str]) -> WorkerInfo:
    return WorkerInfo(
        name=record.get("name", ""),
        host=record.get("host", ""),
        pid=int(record.get("pid") or 0),
        started_at=record.get("started_at", ""),
        version=record.get("version", ""),
        task_id=record.get("task_id") or None,
        phase=record.get("phase") or None,
        last_seen=float(record["last_seen"]) if record.get("last_seen") else None,
    )

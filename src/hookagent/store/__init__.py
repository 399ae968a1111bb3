"""The only package that talks to Redis: tasks, queue, logs, refs, cancels, search, feeds."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis

from hookagent.keys import Keys
from hookagent.settings import Settings
from hookagent.store.cancels import CancelSignals
from hookagent.store.logs import LogStore, NewLine
from hookagent.store.outbox import Outbox, OutboxEvent
from hookagent.store.queue import Job, JobQueue
from hookagent.store.refs import Marks, RefStore
from hookagent.store.search import SearchIndex
from hookagent.store.tasks import TaskStore

__all__ = [
    "CancelSignals",
    "Job",
    "JobQueue",
    "LogStore",
    "Marks",
    "NewLine",
    "Outbox",
    "OutboxEvent",
    "RefStore",
    "Store",
    "TaskStore",
    "connect",
]


MAX_CONNECTIONS = 128


def connect(url: str) -> Redis:
    """An asyncio Redis client (hiredis parser when installed) with string replies.

    The pool blocks when all connections are busy instead of failing the request.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        health_check_interval=30,
        max_connections=MAX_CONNECTIONS,
        timeout=30,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


@dataclass(frozen=True, slots=True)
class Store:
    """The stores one process needs, built from one Redis client and the settings."""

    redis: Redis
    keys: Keys
    tasks: TaskStore
    logs: LogStore
    jobs: JobQueue
    refs: RefStore
    cancels: CancelSignals
    search: SearchIndex
    outbox: Outbox

    @classmethod
    def build(cls, redis: Redis, settings: Settings) -> Store:
        """Wire the stores to ``redis`` with the configured prefix, TTLs and lease."""
        keys = Keys(settings.key_prefix)
        jobs = JobQueue(redis, keys, name="jobs", lease_ms=int(settings.lease_seconds * 1000))
        tasks = TaskStore(
            redis,
            keys,
            jobs=jobs,
            ttl_seconds=settings.task_ttl,
            log_ttl_seconds=settings.log_ttl,
            dedupe_ttl_seconds=settings.dedupe_ttl,
        )
        logs = LogStore(redis, keys, ttl_seconds=settings.log_ttl, max_lines=settings.log_max_lines)
        return cls(
            redis=redis,
            keys=keys,
            tasks=tasks,
            logs=logs,
            jobs=jobs,
            refs=RefStore(
                redis,
                keys,
                dedupe_ttl_seconds=settings.dedupe_ttl,
                link_ttl_seconds=settings.task_ttl,
            ),
            cancels=CancelSignals(redis, keys, tasks=tasks),
            search=SearchIndex(redis, keys, tasks=tasks, logs=logs, ttl_seconds=settings.log_ttl),
            outbox=Outbox(
                redis,
                keys,
                lease_ms=int(settings.notify_lease * 1000),
                ttl_seconds=settings.task_ttl,
            ),
        )

    async def ping(self) -> None:
        """Raise a Redis error unless the server answers PING."""
        await self.redis.ping()

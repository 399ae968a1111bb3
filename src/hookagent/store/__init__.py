"""Redis-backed storage: tasks, the job queue and task logs."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis

from hookagent.keys import Keys
from hookagent.settings import Settings
from hookagent.store.logs import LogStore
from hookagent.store.queue import Job, JobQueue
from hookagent.store.search import SearchIndex
from hookagent.store.tasks import TaskStore

__all__ = ["Job", "JobQueue", "LogStore", "Store", "TaskStore", "connect"]


MAX_CONNECTIONS = 128
# The same on every redis-py we support (5.x had none, 8.x defaults to 5 s): short enough
# that a hung server fails a request instead of holding it.
SOCKET_TIMEOUT_S = 5.0


def connect(
    url: str, *, socket_timeout: float = SOCKET_TIMEOUT_S, client_name: str | None = None
) -> Redis:
    """An asyncio Redis client (hiredis parser when installed) with string replies.

    The pool blocks when all connections are busy instead of failing the request.
    ``socket_timeout`` bounds every read, so blocking commands must BLOCK for less (or use
    a client of their own with a longer one); ``client_name`` labels its connections in
    ``CLIENT LIST``.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        client_name=client_name,
        decode_responses=True,
        health_check_interval=30,
        max_connections=MAX_CONNECTIONS,
        socket_timeout=socket_timeout,
        timeout=30,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


@dataclass(frozen=True, slots=True)
class Store:
    """The stores one process needs, built from one Redis client and the settings."""

    redis: Redis
    tasks: TaskStore
    logs: LogStore
    jobs: JobQueue
    search: SearchIndex

    @classmethod
    def build(cls, redis: Redis, settings: Settings) -> Store:
        """Wire the stores to ``redis`` with the configured prefix, TTLs and lease."""
        keys = Keys(settings.key_prefix)
        tasks = TaskStore(
            redis, keys, ttl_seconds=settings.task_ttl, log_ttl_seconds=settings.log_ttl
        )
        logs = LogStore(redis, keys, ttl_seconds=settings.log_ttl, max_lines=settings.log_max_lines)
        return cls(
            redis=redis,
            tasks=tasks,
            logs=logs,
            search=SearchIndex(redis, keys, tasks=tasks, logs=logs, ttl_seconds=settings.log_ttl),
            jobs=JobQueue(
                redis,
                keys,
                name="jobs",
                lease_ms=int(settings.lease_seconds * 1000),
            ),
        )

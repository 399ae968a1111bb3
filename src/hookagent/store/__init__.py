"""The only package that talks to Redis: tasks, queue, logs, refs, search, workers, metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, overload

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as StoreConnectionError
from redis.exceptions import RedisError as StoreError
from redis.exceptions import ResponseError as StoreReplyError
from redis.exceptions import TimeoutError as StoreTimeoutError

from hookagent.settings import Settings
from hookagent.store.cancels import CancelSignals
from hookagent.store.changes import ChangeRecord, ChangeRequests
from hookagent.store.client import (
    BoundedCluster,
    Client,
    connection_options,
    is_cluster,
    plain_client,
)
from hookagent.store.events import TaskEvents
from hookagent.store.intake import IntakeReply, OneTripIntake
from hookagent.store.keys import Keys
from hookagent.store.logs import LogStore, NewLine
from hookagent.store.metrics import MetricsSnapshot, MetricsStore
from hookagent.store.outbox import Outbox, OutboxEvent
from hookagent.store.queue import Job, JobQueue
from hookagent.store.quota import AgentQuota, Parked, QuotaStore
from hookagent.store.rates import RateLimiter
from hookagent.store.refs import Marks, RefStore
from hookagent.store.reviews import Added, ReviewStore, Round, RoundsState
from hookagent.store.search import SearchIndex
from hookagent.store.sessions import SIGNIN_ATTEMPTS_PER_MINUTE, Session, SessionStore
from hookagent.store.slots import RepoSlots
from hookagent.store.tasks import TaskStore
from hookagent.store.tickets import TicketStore
from hookagent.store.workers import Readiness, WorkerInfo, WorkerRegistry

# The store's failures, named for the rest of the code, which never imports redis itself:
# unreachable or too slow (wait and retry), an error reply, or any of them.
StoreUnavailable = (StoreConnectionError, StoreTimeoutError)

__all__ = [
    "Added",
    "AgentQuota",
    "CancelSignals",
    "ChangeRecord",
    "ChangeRequests",
    "Client",
    "IntakeReply",
    "Job",
    "JobQueue",
    "LogStore",
    "Marks",
    "MetricsSnapshot",
    "MetricsStore",
    "NewLine",
    "OneTripIntake",
    "Outbox",
    "OutboxEvent",
    "Parked",
    "RateLimiter",
    "Readiness",
    "Redis",
    "RefStore",
    "RepoSlots",
    "ReviewStore",
    "Round",
    "RoundsState",
    "Session",
    "SessionStore",
    "Store",
    "StoreConnectionError",
    "StoreError",
    "StoreReplyError",
    "StoreTimeoutError",
    "StoreUnavailable",
    "TaskEvents",
    "TaskStore",
    "TicketStore",
    "WorkerInfo",
    "WorkerRegistry",
    "connect",
    "unreachable",
]


MAX_CONNECTIONS = 128
# The same on every redis-py we support (5.x had none, 8.x defaults to 5 s): short enough
# that a hung server fails a request instead of holding it.
SOCKET_TIMEOUT_S = 5.0
# A cluster client retries a command this often (backoff capped at CLUSTER_BACKOFF_CAP_S)
# while a failover promotes a replica: a few seconds with the usual cluster-node-timeout.
CLUSTER_RETRIES = 12
CLUSTER_BACKOFF_CAP_S = 1.0


@overload
def connect(
    url: str,
    *,
    cluster: Literal[False] = False,
    socket_timeout: float = SOCKET_TIMEOUT_S,
    client_name: str | None = None,
) -> Redis: ...


@overload
def connect(
    url: str,
    *,
    cluster: bool,
    socket_timeout: float = SOCKET_TIMEOUT_S,
    client_name: str | None = None,
) -> Client: ...


def connect(
    url: str,
    *,
    cluster: bool = False,
    socket_timeout: float = SOCKET_TIMEOUT_S,
    client_name: str | None = None,
) -> Client:
    """An asyncio Redis client (hiredis parser when installed) with string replies.

    The pool blocks when all connections are busy instead of failing the request.
    ``socket_timeout`` bounds every read, so blocking commands must BLOCK for less (or use
    a client of their own with a longer one); ``client_name`` labels its connections in
    ``CLIENT LIST``. With ``cluster`` the URL names any node of a Redis Cluster and the
    client follows the slots (and failovers) from there.
    """
    if cluster:
        return BoundedCluster.from_url(
            url,
            in_flight=MAX_CONNECTIONS,
            client_name=client_name,
            decode_responses=True,
            health_check_interval=30,
            max_connections=2 * MAX_CONNECTIONS,  # per node; pipelines go beside the bound
            socket_timeout=socket_timeout,
            retry=Retry(
                ExponentialWithJitterBackoff(cap=CLUSTER_BACKOFF_CAP_S, base=0.05),
                CLUSTER_RETRIES,
            ),
        )
    options = connection_options(
        url,
        client_name=client_name,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=socket_timeout,
    )
    return plain_client(
        options,
        pool_class=BlockingConnectionPool,
        max_connections=MAX_CONNECTIONS,
        # A request waits for a free connection no longer than for a reply: during an
        # outage every connection can be busy timing out, and a waiter queued behind them
        # for 30 s would still be waiting (answering nothing) well after Redis is back.
        timeout=socket_timeout,
    )


@dataclass(frozen=True, slots=True)
class Store:
    """The stores one process needs, built from one Redis client and the settings."""

    redis: Client
    keys: Keys
    tasks: TaskStore
    logs: LogStore
    jobs: JobQueue
    refs: RefStore
    cancels: CancelSignals
    search: SearchIndex
    rates: RateLimiter
    unverified: RateLimiter
    slots: RepoSlots
    tickets: TicketStore
    sessions: SessionStore
    signins: RateLimiter
    events: TaskEvents
    workers: WorkerRegistry
    outbox: Outbox
    metrics: MetricsStore
    changes: ChangeRequests
    # A new task's delivery in one script (store/intake.py); None on a cluster.
    intake: OneTripIntake | None
    reviews: ReviewStore
    quota: QuotaStore

    @classmethod
    def build(cls, redis: Client, settings: Settings) -> Store:
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
        rates = RateLimiter(redis, keys, limit=settings.rate_limit)
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
            rates=rates,
            # Unverified deliveries per client address: a flood of them spends its own
            # budget, never the one signed deliveries are counted against.
            unverified=RateLimiter(
                redis, keys, limit=settings.rate_limit, key=keys.unverified_rate
            ),
            # A slot lapses like the job's lease, and is renewed with it.
            slots=RepoSlots(redis, keys, limit=settings.max_runs_per_repo, ttl_ms=jobs.lease_ms),
            tickets=TicketStore(redis, keys),
            sessions=SessionStore(
                redis,
                keys,
                idle_seconds=settings.session_ttl,
                max_seconds=settings.session_max_age,
            ),
            # Sign-in attempts per client address and minute, good tokens or bad.
            signins=RateLimiter(redis, keys, limit=SIGNIN_ATTEMPTS_PER_MINUTE),
            events=TaskEvents(redis, keys),
            workers=WorkerRegistry(redis, keys, ttl_seconds=settings.worker_ttl),
            outbox=Outbox(
                redis,
                keys,
                lease_ms=int(settings.notify_lease * 1000),
                ttl_seconds=settings.task_ttl,
            ),
            metrics=MetricsStore(redis, keys, jobs=jobs),
            changes=ChangeRequests(redis, keys),
            intake=None
            if is_cluster(redis)
            else OneTripIntake(
                redis,
                keys,
                jobs=jobs,
                rates=rates,
                ttl_seconds=settings.task_ttl,
                dedupe_ttl_seconds=settings.dedupe_ttl,
            ),
            reviews=ReviewStore(redis, keys, jobs=jobs, ttl_seconds=settings.task_ttl),
            quota=QuotaStore(redis, keys, ttl_seconds=settings.task_ttl),
        )

    async def ping(self) -> None:
        """Raise a Redis error unless the server answers PING."""
        await self.redis.ping()


async def unreachable(url: str, *, cluster: bool, timeout: float) -> str | None:
    """Why Redis at ``url`` does not answer PING within ``timeout``; None when it does."""
    client = connect(url, cluster=cluster, socket_timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except TimeoutError:
        return f"no answer within {timeout:.0f}s"
    except (StoreError, OSError, ValueError) as exc:
        # redis-py's own words ("Error 111 connecting to 127.0.0.1:1. Connection refused.",
        # "invalid username-password pair"); they hold no password.
        return str(exc).rstrip(".") or type(exc).__name__
    finally:
        await client.aclose()
    return None

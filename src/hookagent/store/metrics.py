"""Counters and histograms shared by every process, and the snapshot ``/metrics`` serves.

API processes and workers are separate processes (often separate machines), so anything
counted where it happens (a webhook, a phase's duration, an attempt's log lines, the agent's
cost) is added to a hash in Redis, and a scrape of any API process reads the same totals.
Gauges (queue depth, tasks by status, outbox length) are read from the live structures at
scrape time, so they cannot drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hookagent.models import Phase, TaskStatus
from hookagent.store.client import Client, Command, batch
from hookagent.store.keys import WORKER_GROUP, Keys
from hookagent.store.queue import JobQueue

# Upper bounds (seconds) of the phase duration buckets: a plan takes seconds to minutes, an
# execution up to HOOKAGENT_EXECUTION_TIMEOUT (10 minutes by default) and beyond.
PHASE_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, math.inf)
# Time from a change request's opening to its merge: minutes for a typo, days for a review.
MERGE_BUCKETS: tuple[float, ...] = (
    300,
    1800,
    3600,
    4 * 3600,
    12 * 3600,
    86400,
    3 * 86400,
    7 * 86400,
    30 * 86400,
    math.inf,
)
_LOG_LINES = "log_lines"
_MERGED = "changes:merged"
_CLOSED = "changes:closed"
_ROUNDS = "review_rounds"
_COST = "cost_usd"
_WEBHOOK = "webhook"
_QUOTA_WAIT = "quota_waits"


def webhook_field(source: str, outcome: str) -> str:
    """The metrics hash field counting ``source``'s deliveries answered with ``outcome``."""
    return f"{_WEBHOOK}:{source}:{outcome}"


def bucket_name(bound: float) -> str:
    """A bucket's field in the histogram hash (and its ``le`` label): ``30``, ``+Inf``."""
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative bucket counts (``le`` → count), the sum and the count of observations."""

    buckets: list[tuple[str, int]]
    total: float
    count: int


@dataclass(slots=True)
class MetricsSnapshot:
    """Everything ``/metrics`` reports, read from Redis in a few round trips."""

    queue_depth: int = 0
    oldest_job_age_s: float = 0.0
    tasks: dict[TaskStatus, int] = field(default_factory=dict)
    log_lines: int = 0
    cost_usd: float = 0.0
    webhooks: dict[tuple[str, str], int] = field(default_factory=dict)
    quota_waits: dict[str, int] = field(default_factory=dict)
    phases: dict[str, Histogram] = field(default_factory=dict)
    outbox_backlog: int = 0
    merged: int = 0
    closed: int = 0
    review_rounds: int = 0
    time_to_merge: Histogram = field(default_factory=lambda: _histogram({}, MERGE_BUCKETS))

    @property
    def runs_in_progress(self) -> int:
        """Tasks a worker is running now (planning or executing)."""
        return self.tasks.get(TaskStatus.DISCOVERING, 0) + self.tasks.get(TaskStatus.EXECUTING, 0)


class MetricsStore:
    """Adds to the shared counters, and reads every metric for a scrape."""

    def __init__(self, redis: Client, keys: Keys, *, jobs: JobQueue) -> None:
        # Typed loosely like the other stores: redis-py's annotations vary across versions.
        self._redis: Any = redis
        self._keys = keys
        self._jobs = jobs

    async def count_webhook(self, source: str, outcome: str) -> None:
        """One delivery from ``source`` answered with ``outcome``."""
        await self._redis.hincrby(self._keys.metrics(), webhook_field(source, outcome), 1)

    async def count_quota_wait(self, agent: str) -> None:
        """Count a task that started waiting for ``agent``'s model quota."""
        await self._redis.hincrby(self._keys.metrics(), f"{_QUOTA_WAIT}:{agent}", 1)

    async def add_cost(self, usd: float) -> None:
        """Add the cost an agent run reported."""
        await self._redis.hincrbyfloat(self._keys.metrics(), _COST, usd)

    async def log_seq(self, task_id: str) -> int:
        """How many lines the task's log has taken so far (its sequence number)."""
        seq = await self._redis.hget(self._keys.task(task_id), "log_seq")
        return int(seq or 0)

    async def count_log_lines(self, task_id: str, *, since: int) -> None:
        """Add the lines the task's log took since its sequence number was ``since``.

        Called once per attempt, after its log writer closed: one round trip per attempt,
        not per line or batch, and nothing changes in the log append path.
        """
        lines = await self.log_seq(task_id) - since
        if lines > 0:
            await self._redis.hincrby(self._keys.metrics(), _LOG_LINES, lines)

    async def observe_phase(self, phase: Phase, seconds: float) -> None:
        """Record one phase run of ``seconds`` in that phase's histogram."""
        await self._observe(self._keys.phase_durations(phase.value), PHASE_BUCKETS, seconds)

    async def observe_change_end(self, *, merged: bool, seconds: float | None, rounds: int) -> None:
        """A change request ended: merged (in ``seconds``, when known) or closed unmerged.

        ``rounds``: the follow-up rounds it had, added to the review rounds total.
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self._keys.metrics(), _MERGED if merged else _CLOSED, 1)
            if rounds:
                pipe.hincrby(self._keys.metrics(), _ROUNDS, rounds)
            await pipe.execute()
        if merged and seconds is not None:
            await self._observe(self._keys.time_to_merge(), MERGE_BUCKETS, seconds)

    async def _observe(self, key: str, bounds: tuple[float, ...], seconds: float) -> None:
        """One observation in the histogram hash ``key`` (one slot: a transaction)."""
        bound = next(b for b in bounds if seconds <= b)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, bucket_name(bound), 1)
            pipe.hincrbyfloat(key, "sum", seconds)
            pipe.hincrby(key, "count", 1)
            await pipe.execute()

    async def snapshot(self) -> MetricsSnapshot:
        """Read every metric: one batch and, when jobs wait, two more reads.

        Through :func:`batch`, one pipeline on a single server; on a cluster, whose
        pipelines refuse keyless commands such as TIME, the reads go side by side.
        """
        keys = self._keys
        commands: list[Command] = [
            ("TIME",),
            ("XLEN", self._jobs.key),
            ("XLEN", keys.outbox()),
            ("HGETALL", keys.metrics()),
            ("HGETALL", keys.time_to_merge()),
            *(("ZCARD", keys.tasks_by_status(status)) for status in TaskStatus),
            *(("HGETALL", keys.phase_durations(phase.value)) for phase in Phase),
        ]
        replies = await batch(self._redis, [[command] for command in commands])
        (now_s, now_us), jobs, outbox, counters, merge_times, *rest = replies
        statuses, phases = rest[: len(TaskStatus)], rest[len(TaskStatus) :]
        snap = MetricsSnapshot(outbox_backlog=int(outbox))
        snap.tasks = {s: int(n) for s, n in zip(TaskStatus, statuses, strict=True)}
        snap.phases = {
            p.value: _histogram(h, PHASE_BUCKETS) for p, h in zip(Phase, phases, strict=True)
        }
        snap.time_to_merge = _histogram(merge_times, MERGE_BUCKETS)
        snap.merged, snap.closed = int(counters.get(_MERGED, 0)), int(counters.get(_CLOSED, 0))
        snap.review_rounds = int(counters.get(_ROUNDS, 0))
        snap.log_lines = int(counters.get(_LOG_LINES, 0))
        snap.cost_usd = float(counters.get(_COST, 0))
        for name, value in counters.items():
            if name.startswith(f"{_WEBHOOK}:"):
                _, source, outcome = name.split(":", 2)
                snap.webhooks[(source, outcome)] = int(value)
            elif name.startswith(f"{_QUOTA_WAIT}:"):
                snap.quota_waits[name.split(":", 1)[1]] = int(value)
        now_ms = int(now_s) * 1000 + int(now_us) // 1000
        snap.queue_depth, snap.oldest_job_age_s = await self._waiting(int(jobs), now_ms)
        return snap

    async def _waiting(self, length: int, now_ms: int) -> tuple[int, float]:
        """Jobs no worker took yet, and the age of the oldest (its entry id is its time)."""
        if length == 0:
            return 0, 0.0
        # Acked jobs are deleted, so the stream holds the waiting jobs and the running ones;
        # those after the group's last-delivered id were never handed to a worker.
        groups = await self._redis.xinfo_groups(self._jobs.key)
        group = next((g for g in groups if g["name"] == WORKER_GROUP), None)
        last = group["last-delivered-id"] if group else "0-0"
        pending = int(group["pending"]) if group else 0
        first = await self._redis.xrange(self._jobs.key, min=f"({last}", max="+", count=1)
        if not first:
            return max(length - pending, 0), 0.0
        created_ms = int(first[0][0].split("-")[0])
        return max(length - pending, 0), max(now_ms - created_ms, 0) / 1000


def _histogram(raw: dict[str, str], bounds: tuple[float, ...]) -> Histogram:
    running = 0
    buckets = []
    for bound in bounds:
        running += int(raw.get(bucket_name(bound), 0))
        buckets.append((bucket_name(bound), running))
    return Histogram(
        buckets=buckets, total=float(raw.get("sum", 0)), count=int(raw.get("count", 0))
    )

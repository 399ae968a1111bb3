"""Search benchmark: 24 h of logs (2,000 tasks x 1,000 lines), ingest rate and query latency.

Ingests the same generated logs twice through the worker's LogWriter, with and without the
search index, and reports lines/s, CPU per line (this process and the server) and the
index's Redis memory per line; then times first-page queries and reports p50, p95, p99
and the slowest of each, the worst query, and the server's CPU per query.

    python bench/search.py [--tasks 2000] [--lines 1000] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from common import Row, log_writer, run
from hookagent.models import LogStream, NewTask
from hookagent.settings import Settings
from hookagent.store import Store, connect

VOCABULARY = (
    "error warning retry timeout connection refused database query slow index table "
    "payment invoice coupon checkout cart order user session token expired cache miss "
    "worker queue job lease reclaim deploy rollout canary kubernetes pod restart memory"
).split()
QUERIES = [
    "timeout",
    "payment failed",
    '"connection refused"',
    "coupon expired",
    "canary pod",
    'timeout "connection refused"',
]
# The target for the first page, at the worst query of the bench.
P95_TARGET_MS, P99_TARGET_MS = 50.0, 100.0


def lines_for(rng: random.Random, count: int, task_no: int) -> list[str]:
    """Log-like lines, with a few rare words so some queries are selective."""
    out = []
    for i in range(count):
        words = rng.choices(VOCABULARY, k=6)
        if rng.random() < 0.001:
            words.append("failed")
        out.append(f"step {i} task {task_no}: {' '.join(words)}")
    return out


@dataclass
class Ingest:
    """One ingest run: its rate, CPU per line (here and on the server), index memory."""

    rate: float
    cpu_us: float
    server_cpu_us: float
    index_bytes: float  # the search keys' MEMORY USAGE per line
    store: Store


@dataclass
class Measured:
    """Ingest without and with the index, each query's timings, the server's CPU per query."""

    plain: Ingest
    indexed: Ingest
    timings: dict[str, list[float]]
    server_cpu_ms: dict[str, float]
    client_cpu_ms: dict[str, float]
    lines: int

    def worst(self) -> str:
        """The query with the highest p95."""
        return max(self.timings, key=lambda q: tail(self.timings[q])[0])


def tail(samples: list[float]) -> tuple[float, float]:
    """p95 and p99 of ``samples`` (the largest sample when there are few)."""
    if len(samples) < 2:
        return samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[94], cuts[98]


async def server_cpu(redis: Redis) -> float:
    """The server's CPU time so far (user + system, every thread), in seconds."""
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def index_bytes(redis: Redis, prefix: str) -> int:
    """The Redis memory of every search key under ``prefix``."""
    total = 0
    async for key in redis.scan_iter(match=f"{prefix}:search:*", count=10_000):
        total += await redis.memory_usage(key, samples=0) or 0
    return total


async def ingest(redis: Redis, tasks: int, lines: int, *, index: bool) -> Ingest:
    settings = Settings(key_prefix=f"bench-search-{uuid.uuid4().hex[:8]}", log_max_lines=lines + 10)
    store = Store.build(redis, settings)
    rng = random.Random(1)
    batches = [lines_for(rng, lines, n) for n in range(tasks)]
    started, cpu, server = time.perf_counter(), time.process_time(), await server_cpu(redis)
    for batch in batches:
        new = NewTask(source="bench", repository="o/r", title="t", prompt="p")
        task = await store.tasks.create(new)
        async with log_writer(store, settings, task.task_id, index=index) as writer:
            for line in batch:
                writer.add(LogStream.STDOUT, line)
            await writer.wait_room()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    total = tasks * lines
    server = await server_cpu(redis) - server
    memory = await index_bytes(redis, settings.key_prefix)
    return Ingest(total / elapsed, cpu / total * 1e6, server / total * 1e6, memory / total, store)


async def cleanup(redis: Redis, prefix: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=10_000)]
    for start in range(0, len(keys), 10_000):
        await redis.delete(*keys[start : start + 10_000])


async def measure(url: str, tasks: int, lines: int, rounds: int) -> Measured:
    """Ingest without and with the index, then every query ``rounds`` times."""
    redis = connect(url)
    try:
        plain = await ingest(redis, tasks, lines, index=False)
        await cleanup(redis, plain.store.keys.prefix)
        indexed = await ingest(redis, tasks, lines, index=True)
        timings: dict[str, list[float]] = {q: [] for q in QUERIES}
        server: dict[str, float] = dict.fromkeys(QUERIES, 0.0)
        client: dict[str, float] = dict.fromkeys(QUERIES, 0.0)
        for _ in range(rounds):
            for q in QUERIES:
                cpu, started = await server_cpu(redis), time.perf_counter()
                own = time.process_time()
                await indexed.store.search.search(q, limit=50)
                timings[q].append((time.perf_counter() - started) * 1000)
                client[q] += time.process_time() - own
                server[q] += await server_cpu(redis) - cpu
        await cleanup(redis, indexed.store.keys.prefix)
    finally:
        await redis.aclose()
    server_ms = {q: seconds / rounds * 1000 for q, seconds in server.items()}
    client_ms = {q: seconds / rounds * 1000 for q, seconds in client.items()}
    return Measured(plain, indexed, timings, server_ms, client_ms, tasks * lines)


async def main(args: argparse.Namespace) -> None:
    """Run the benchmark and print two tables."""
    m = await measure(args.redis_url, args.tasks, args.lines, args.rounds)
    print(
        f"| ingest ({m.lines:,} lines) | lines/s | CPU µs/line | server CPU µs/line "
        "| index B/line |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, run_ in (("without index", m.plain), ("with index", m.indexed)):
        share = f", {run_.rate / m.plain.rate:.0%}" if run_ is m.indexed else ""
        print(
            f"| {name} | {run_.rate:,.0f}{share} | {run_.cpu_us:.2f} | "
            f"{run_.server_cpu_us:.2f} | {run_.index_bytes:.1f} |"
        )
    print()
    print(
        "| query (first page, 50 hits) | p50 ms | p95 ms | p99 ms | max ms "
        "| server CPU ms/query | client CPU ms/query |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for q, samples in m.timings.items():
        p95, p99 = tail(samples)
        print(
            f"| `{q}` | {statistics.median(samples):.1f} | {p95:.1f} | {p99:.1f} | "
            f"{max(samples):.1f} | {m.server_cpu_ms[q]:.2f} | {m.client_cpu_ms[q]:.2f} |"
        )
    every = [ms for samples in m.timings.values() for ms in samples]
    p95, p99 = tail(every)
    cpu = statistics.mean(m.server_cpu_ms.values())
    own = statistics.mean(m.client_cpu_ms.values())
    print(
        f"| all queries | {statistics.median(every):.1f} | {p95:.1f} | {p99:.1f} | "
        f"{max(every):.1f} | {cpu:.2f} | {own:.2f} |"
    )
    print(f"\nworst query (highest p95): `{m.worst()}`")


async def table_rows(url: str, quick: bool = False) -> list[Row]:
    """Ingest with the index, and the first page of the worst query against the issue's target."""
    tasks, rounds = (200, 5) if quick else (2000, 20)
    m = await measure(url, tasks, 1000, rounds)
    worst = m.worst()
    p95, p99 = tail(m.timings[worst])
    every = [ms for samples in m.timings.values() for ms in samples]
    all_p95, all_p99 = tail(every)
    return [
        Row(
            "search",
            f"ingest with the index, {tasks:,} tasks x 1,000 lines",
            "-",
            f"{m.indexed.rate:,.0f} lines/s ({m.indexed.rate / m.plain.rate:.0%} of without); "
            f"{m.indexed.cpu_us:.1f} µs CPU/line, server {m.indexed.server_cpu_us:.1f}; "
            f"index {m.indexed.index_bytes:.1f} B/line",
            None,
        ),
        Row(
            "search",
            f"first page of 50 hits, {m.lines:,} lines, {len(QUERIES)} queries x {rounds}, "
            "worst query",
            f"p95 ≤ {P95_TARGET_MS:.0f} ms, p99 ≤ {P99_TARGET_MS:.0f} ms",
            f"worst `{worst}` p95 {p95:.1f} / p99 {p99:.1f} ms, CPU server "
            f"{m.server_cpu_ms[worst]:.1f} + client {m.client_cpu_ms[worst]:.1f} ms/query; "
            "all queries p50 "
            f"{statistics.median(every):.1f} / p95 {all_p95:.1f} / p99 {all_p99:.1f} ms",
            p95 <= P95_TARGET_MS and p99 <= P99_TARGET_MS,
        ),
    ]


def cli() -> None:
    """Parse arguments; start an embedded Valkey unless --redis-url is given."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--redis-url")
    run(main, parser.parse_args())


if __name__ == "__main__":
    cli()

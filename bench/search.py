"""Search benchmark: 24 h of logs (2,000 tasks x 1,000 lines), ingest rate and query latency.

Ingests the same generated logs twice through the worker's LogWriter, with and without the
search index, and reports lines/s for both; then times first-page queries (p50, p95).

    python bench/search.py [--tasks 2000] [--lines 1000] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid

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
QUERIES = ["timeout", "payment failed", '"connection refused"', "coupon expired", "canary pod"]


def lines_for(rng: random.Random, count: int, task_no: int) -> list[str]:
    """Log-like lines, with a few rare words so some queries are selective."""
    out = []
    for i in range(count):
        words = rng.choices(VOCABULARY, k=6)
        if rng.random() < 0.001:
            words.append("failed")
        out.append(f"step {i} task {task_no}: {' '.join(words)}")
    return out


async def ingest(redis: Redis, tasks: int, lines: int, *, index: bool) -> tuple[float, Store]:
    settings = Settings(key_prefix=f"bench-search-{uuid.uuid4().hex[:8]}", log_max_lines=lines + 10)
    store = Store.build(redis, settings)
    rng = random.Random(1)
    batches = [lines_for(rng, lines, n) for n in range(tasks)]
    started = time.perf_counter()
    for batch in batches:
        new = NewTask(source="bench", repository="o/r", title="t", prompt="p")
        task = await store.tasks.create(new)
        async with log_writer(store, settings, task.task_id, index=index) as writer:
            for line in batch:
                writer.add(LogStream.STDOUT, line)
            await writer.wait_room()
    elapsed = time.perf_counter() - started
    return tasks * lines / elapsed, store


async def cleanup(redis: Redis, prefix: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=10_000)]
    for start in range(0, len(keys), 10_000):
        await redis.delete(*keys[start : start + 10_000])


async def measure(
    url: str, tasks: int, lines: int, rounds: int
) -> tuple[float, float, dict[str, list[float]]]:
    """Ingest rates without and with the index, and each query's timings in ms."""
    redis = connect(url)
    try:
        plain_rate, plain = await ingest(redis, tasks, lines, index=False)
        await cleanup(redis, plain.tasks._keys.prefix)
        indexed_rate, store = await ingest(redis, tasks, lines, index=True)
        timings: dict[str, list[float]] = {q: [] for q in QUERIES}
        for _ in range(rounds):
            for q in QUERIES:
                started = time.perf_counter()
                await store.search.search(q, limit=50)
                timings[q].append((time.perf_counter() - started) * 1000)
        await cleanup(redis, store.tasks._keys.prefix)
    finally:
        await redis.aclose()
    return plain_rate, indexed_rate, timings


async def main(args: argparse.Namespace) -> None:
    """Run the benchmark and print a table."""
    plain_rate, indexed_rate, timings = await measure(
        args.redis_url, args.tasks, args.lines, args.rounds
    )
    total = args.tasks * args.lines
    print(f"| ingest ({total:,} lines) | lines/s |")
    print("|---|---:|")
    print(f"| without index | {plain_rate:,.0f} |")
    print(f"| with index | {indexed_rate:,.0f} ({indexed_rate / plain_rate:.0%}) |")
    print()
    print("| query (first page, 50 hits) | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    everything: list[float] = []
    for q, samples in timings.items():
        everything += samples
        p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]
        print(f"| `{q}` | {statistics.median(samples):.1f} | {p95:.1f} |")
    print(
        f"| all queries | {statistics.median(everything):.1f} | "
        f"{statistics.quantiles(everything, n=20)[-1]:.1f} |"
    )


async def table_rows(url: str, quick: bool = False) -> list[Row]:
    """Ingest with the index, and the first page of every query (no target in the issue)."""
    tasks, rounds = (200, 5) if quick else (2000, 20)
    plain_rate, indexed_rate, timings = await measure(url, tasks, 1000, rounds)
    every = [ms for samples in timings.values() for ms in samples]
    slowest = max(timings, key=lambda q: statistics.median(timings[q]))
    return [
        Row(
            "search",
            f"ingest with the index, {tasks:,} tasks x 1,000 lines",
            "-",
            f"{indexed_rate:,.0f} lines/s ({indexed_rate / plain_rate:.0%} of without)",
            None,
        ),
        Row(
            "search",
            f"first page of 50 hits, {len(QUERIES)} queries x {rounds}",
            "-",
            f"p50 {statistics.median(every):.1f} / p95 "
            f"{statistics.quantiles(every, n=20)[-1]:.1f} ms; slowest `{slowest}` "
            f"p50 {statistics.median(timings[slowest]):.1f} ms",
            None,
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

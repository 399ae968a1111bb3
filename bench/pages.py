"""Log page benchmark: ``GET /tasks/{id}/logs`` pages of 100 lines from a 1,000,000-line task.

Writes the task's log as the worker would (batches of ``HOOKAGENT_LOG_BATCH_LINES`` lines,
one chunk each), then requests pages of 100 at offsets 0, the middle and the end (the last
100 lines), each many times, through the FastAPI app in-process (``httpx.ASGITransport``):
the time covers routing, the store's read (one Redis round trip), decoding the chunks and
serialising the JSON answer, but no network. Also times ``LogStore.read`` alone.

    python bench/pages.py [--lines 1000000] [--requests 500] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import httpx

from common import run
from hookagent.api import create_app
from hookagent.models import NewTask, utc_iso
from hookagent.settings import Settings
from hookagent.store import Store, connect
from hookagent.store.logs import NewLine

PAGE = 100


async def fill(store: Store, task_id: str, lines: int, batch: int) -> float:
    """Write ``lines`` short stdout lines in batches of ``batch``; returns seconds taken."""
    started = time.perf_counter()
    for start in range(0, lines, batch):
        ts = utc_iso()
        rows = [
            NewLine(ts, "stdout", f"[stdout] line {i} of the agent output", "text")
            for i in range(start, min(lines, start + batch))
        ]
        await store.logs.append(task_id, rows, attempt=1)
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


async def main(args: argparse.Namespace) -> None:
    """Fill one task's log, then time pages at three offsets."""
    settings = Settings(
        redis_url=args.redis_url,
        key_prefix=f"bench-pages-{uuid.uuid4().hex[:8]}",
        log_max_lines=args.lines + 10,
    )
    redis = connect(args.redis_url)
    store = Store.build(redis, settings)
    task = await store.tasks.create(
        NewTask(source="bench", repository="o/r", title="t", prompt="p")
    )
    took = await fill(store, task.task_id, args.lines, settings.log_batch_lines)
    print(f"filled {args.lines:,} lines in {took:.1f} s ({settings.log_batch_lines} per chunk)")
    offsets = {"0": 0, "middle": args.lines // 2 + 37, "end": args.lines - PAGE}
    app = create_app(settings, redis=redis)
    rows = []
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://hookagent"
            ) as http,
        ):
            for name, offset in offsets.items():
                url = f"/tasks/{task.task_id}/logs?offset={offset}&limit={PAGE}"
                api: list[float] = []
                store_only: list[float] = []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    response = await http.get(url)
                    api.append(time.perf_counter() - started)
                    page = response.json()
                    if response.status_code != 200 or [e["seq"] for e in page["logs"]] != list(
                        range(offset, offset + PAGE)
                    ):
                        raise SystemExit(f"bench run broken at offset {offset}: {response.text}")
                    started = time.perf_counter()
                    await store.logs.read(task.task_id, offset=offset, limit=PAGE)
                    store_only.append(time.perf_counter() - started)
                rows.append((name, offset, *percentiles(api), *percentiles(store_only)))
    finally:
        await redis.delete(store.keys.logs(task.task_id), store.keys.task(task.task_id))
        await redis.aclose()
    print("| offset | page | API p50 ms | API p99 ms | LogStore.read p50 ms | read p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, offset, p50, p99, r50, r99 in rows:
        print(f"| {name} | {offset:,}+{PAGE} | {p50:.2f} | {p99:.2f} | {r50:.2f} | {r99:.2f} |")


def cli() -> None:
    """Parse arguments; start an embedded Valkey unless --redis-url is given."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=500, help="per offset")
    parser.add_argument("--redis-url")
    run(main, parser.parse_args())


if __name__ == "__main__":
    cli()

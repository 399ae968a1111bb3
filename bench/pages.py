"""Log page benchmark: ``GET /tasks/{id}/logs`` pages of 100 lines from a 1,000,000-line task.

Writes the task's log as the worker would (batches of ``HOOKAGENT_LOG_BATCH_LINES`` lines,
one chunk each), then requests pages of 100 at offsets 0, the middle and the end (the last
100 lines), each many times, through the FastAPI app in-process (``httpx.ASGITransport``):
the time covers routing, the store's read (one Redis round trip), decoding the chunks and
serialising the JSON answer, but no network. Three timings per page: the app called as a
bare ASGI callable (what the server spends: from the request to the last body byte), the
same through ``httpx.ASGITransport`` (adds the client's work) and ``LogStore.read`` alone;
and the server's CPU time per page, which other load on the machine does not inflate.

    python bench/pages.py [--lines 1000000] [--requests 500] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

import httpx
from fastapi import FastAPI

from common import Row, run
from hookagent.api import create_app
from hookagent.models import NewTask, utc_iso
from hookagent.settings import Settings
from hookagent.store import Store, connect
from hookagent.store.logs import CHUNK_LINES, NewLine

PAGE = 100
TARGET_MS = 5.0
CPU_TARGET_US = 800.0  # server CPU per page (the median page)
WARMUP = 20


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


async def served(app: FastAPI, path: str, query: str) -> tuple[float, float, int, bytes]:
    """Wall and CPU seconds the app takes to answer one GET as a bare ASGI call, its status
    and body. CPU time (this thread's) does not grow when other processes take the cores."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"hookagent")],
        "client": ("127.0.0.1", 1),
        "server": ("hookagent", 80),
    }
    status, body = 0, bytearray()

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    started, cpu = time.perf_counter(), time.thread_time()
    await app(scope, receive, send)
    return time.perf_counter() - started, time.thread_time() - cpu, status, bytes(body)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


Timings = tuple[str, int, float, float, float, float, float, float, float, float]


async def measure(url: str, lines: int, requests: int) -> list[Timings]:
    """Fill one task's log, then time pages at three offsets: name, offset, p50/p99 pairs
    (server wall, server CPU, via httpx, LogStore.read) in milliseconds."""
    settings = Settings(
        redis_url=url,
        key_prefix=f"bench-pages-{uuid.uuid4().hex[:8]}",
        log_max_lines=lines + 10,
    )
    redis = connect(url)
    store = Store.build(redis, settings)
    task = await store.tasks.create(
        NewTask(source="bench", repository="o/r", title="t", prompt="p")
    )
    took = await fill(store, task.task_id, lines, settings.log_batch_lines)
    print(
        f"filled {lines:,} lines in {took:.1f} s (batches of {settings.log_batch_lines}, "
        f"chunks of {CHUNK_LINES})"
    )
    offsets = {"0": 0, "middle": lines // 2 + 37, "end": lines - PAGE}
    app = create_app(settings, redis=redis)
    rows: list[Timings] = []
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://hookagent"
            ) as http,
        ):
            for name, offset in offsets.items():
                path, query = f"/tasks/{task.task_id}/logs", f"offset={offset}&limit={PAGE}"
                asgi: list[float] = []
                asgi_cpu: list[float] = []
                client: list[float] = []
                store_only: list[float] = []
                for n in range(WARMUP + requests):
                    took, cpu, status, body = await served(app, path, query)
                    seqs = [e["seq"] for e in json.loads(body)["logs"]] if status == 200 else []
                    if seqs != list(range(offset, offset + PAGE)):
                        raise SystemExit(f"bench run broken at offset {offset}: {body[:200]!r}")
                    started = time.perf_counter()
                    response = await http.get(f"{path}?{query}")
                    through_httpx = time.perf_counter() - started
                    response.raise_for_status()
                    started = time.perf_counter()
                    await store.logs.read(task.task_id, offset=offset, limit=PAGE)
                    if n >= WARMUP:
                        asgi.append(took)
                        asgi_cpu.append(cpu)
                        client.append(through_httpx)
                        store_only.append(time.perf_counter() - started)
                a, b, c, d = (percentiles(t) for t in (asgi, asgi_cpu, client, store_only))
                rows.append((name, offset, *a, *b, *c, *d))
    finally:
        await redis.delete(store.keys.logs(task.task_id), store.keys.task(task.task_id))
        await redis.aclose()
    return rows


async def main(args: argparse.Namespace) -> None:
    """Fill one task's log, then time pages at three offsets; print the table."""
    rows = await measure(args.redis_url, args.lines, args.requests)
    print(
        "| offset | page | server p50 ms | server p99 ms | server CPU p50 | server CPU p99 "
        "| via httpx p50 | via httpx p99 | LogStore.read p50 | read p99 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, offset, *ms in rows:
        cells = " | ".join(f"{m:.2f}" for m in ms)
        print(f"| {name} | {offset:,}+{PAGE} | {cells} |")


async def table_rows(url: str, quick: bool = False) -> list[Row]:
    """One row per offset against the target (p99 ≤ 5 ms at the server, wall clock)."""
    lines, requests = (200_000, 200) if quick else (1_000_000, 1000)
    out = []
    for name, offset, p50, p99, cpu50, cpu99, *_ in await measure(url, lines, requests):
        out.append(
            Row(
                "/logs page",
                f"100 entries at offset {name} ({offset:,}) of {lines:,} lines",
                f"p99 ≤ {TARGET_MS:.0f} ms at the server, ≤ {CPU_TARGET_US:.0f} µs CPU/page",
                f"p50 {p50:.2f} / p99 {p99:.2f} ms; server CPU {cpu50 * 1000:,.0f} µs/page "
                f"(p99 {cpu99 * 1000:,.0f} µs)",
                p99 <= TARGET_MS and cpu50 * 1000 <= CPU_TARGET_US,
            )
        )
    return out


def cli() -> None:
    """Parse arguments; start an embedded Valkey unless --redis-url is given."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=500, help="per offset")
    parser.add_argument("--redis-url")
    run(main, parser.parse_args())


if __name__ == "__main__":
    cli()

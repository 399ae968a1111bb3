"""Every benchmark in one run, one table: target, measured, met? per row (``make bench``).

Runs ingest (and Redis memory per line), live latency, webhook intake and the API's
responsiveness beside a busy agent, ``/logs`` pages, search and start-up (a webhook to the
agent's first line, first and second task on a big repository), one after the other
against one Valkey (an embedded one unless --redis-url), and prints one markdown table.
Each bench's own script prints more detail: ``python bench/<name>.py --help``.

    python bench/run.py [--quick] [--only ingest,latency,...] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from collections.abc import Awaitable, Callable

import intake
import latency
import pages
import search
import startup
from common import Row, load_average, print_rows, valkey
from hookagent.store import connect
from ingest import bench_redactor, ours, seed_design

INGEST_TARGET = 300_000
SPEEDUP_TARGET = 100.0
MEMORY_TARGET = 60.0


async def ingest_rows(url: str, quick: bool = False) -> list[Row]:
    """Ingest lines/s (plain and with redaction) against the seed's design, and memory."""
    lines, seed_lines = (200_000, 20_000) if quick else (1_000_000, 100_000)
    redis = connect(url)
    try:
        plain = await ours(redis, url, lines)
        redacted = await ours(redis, url, lines, bench_redactor())
        seed_rate, _ = await seed_design(redis, seed_lines)
    finally:
        await redis.aclose()
    speedup = plain.rate / seed_rate
    return [
        Row(
            "ingest",
            f"{lines:,} lines, one agent into Redis (seed: {seed_lines:,})",
            f"≥ {INGEST_TARGET:,} lines/s, ≥ {SPEEDUP_TARGET:.0f}x the seed",
            f"{plain.rate:,.0f} lines/s, {speedup:.1f}x the seed ({seed_rate:,.0f}); "
            f"{plain.cpu_us:.1f} µs CPU/line",
            plain.rate >= INGEST_TARGET and speedup >= SPEEDUP_TARGET,
        ),
        Row(
            "ingest",
            "the same with secret redaction",
            "-",
            f"{redacted.rate:,.0f} lines/s; {redacted.cpu_us:.1f} µs CPU/line",
            None,
        ),
        Row(
            "Redis memory",
            f"per log line, measured on {lines:,} lines",
            f"≤ {MEMORY_TARGET:.0f} B/line",
            f"{plain.key_bytes:.1f} B/line ({plain.key_bytes:.0f} MB per 1,000,000 lines)",
            plain.key_bytes <= MEMORY_TARGET,
        ),
    ]


BENCHES: dict[str, Callable[[str, bool], Awaitable[list[Row]]]] = {
    "ingest": ingest_rows,
    "latency": latency.rows,
    "intake": intake.rows,
    "pages": pages.table_rows,
    "search": search.table_rows,
    "startup": startup.rows,
}


def machine() -> str:
    """One line describing where this ran."""
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"load average {load_average()} at the end"
    )


async def run_all(url: str, names: list[str], quick: bool) -> list[Row]:
    """Each named bench in turn; their rows in order."""
    out: list[Row] = []
    for name in names:
        started = time.perf_counter()
        out += await BENCHES[name](url, quick)
        print(f"{name}: done in {time.perf_counter() - started:.0f} s (load {load_average()})")
    return out


def cli() -> None:
    """Parse arguments; start an embedded Valkey unless --redis-url is given."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated benches")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(BENCHES)
    if unknown:
        parser.error(
            f"unknown bench(es): {', '.join(sorted(unknown))}; known: {', '.join(BENCHES)}"
        )
    with valkey(args.redis_url) as url:
        table = asyncio.run(run_all(url, names, args.quick))
    print()
    print(machine())
    print_rows(table)


if __name__ == "__main__":
    cli()

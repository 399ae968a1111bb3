"""Webhook intake: signed Sentry deliveries per second on 1 and 2 API processes, and /healthz.

``hookagent server`` (one process, loopback, no tokens, no rate limit or queue cap) answers
a closed-loop load from bench/load.py in another process: COUNT signed Sentry deliveries,
each a new incident (a new task each: parse, verify, dedupe check, task hash, queue entry,
event; no dedupe hits), over CONCURRENCY keep-alive connections; then as many ``GET
/healthz`` (the same app's ceiling). Requests/s and p50/p99 latency at the client.

Then the same deliveries against ``hookagent server --api-processes 2`` (one port, two
processes): the scaling from 1 to 2 is measured; 4 and 8 are projected from the CPU per
request (N free cores at that cost), and marked so.

Responsiveness: the same two loads again while an agent prints as fast as it can through
the worker's log path (runner → adapter → ``LogWriter`` into Redis) in this process,
which plays the worker: under ``hookagent up`` workers run in processes of their own. The
agent is started as the worker starts it: ``HOOKAGENT_AGENT_NICE`` nicer, in the idle I/O
class (``HOOKAGENT_AGENT_NICE=0`` measures it at the worker's priority).

    python bench/intake.py [--quick] [--count 10000] [--concurrency 20] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

from common import Row, Server, load_average, log_writer, print_rows, valkey
from hookagent.agents.command import CommandRun
from hookagent.agents.runner import run_process
from hookagent.models import LogStream, NewTask
from hookagent.settings import Settings
from hookagent.store import Store, connect
from hookagent.worker import line_sink
from ingest import printer

LOAD = Path(__file__).parent / "load.py"
SECRET = "bench-sentry-client-secret-0123456789"
BUSY_LINES = 200_000
RATE_TARGET = 2000.0
P99_TARGET_MS = 25.0
DELIVERY_CPU_TARGET_US = 500.0
HEALTHZ_CPU_TARGET_US = 100.0
SCALING_TARGET = 0.8  # N processes give at least 0.8 x N x one process's rate
PROJECTED = (4, 8)


class Load(NamedTuple):
    """One load's figures at the client."""

    rate: float
    p50_ms: float
    p99_ms: float
    ok: bool  # every answer the expected status
    cpu_us: float  # the server's CPU time per request: what a free core would give
    agent_lines_s: float | None = None  # beside a busy agent: how fast it printed meanwhile


async def load(server: Server, kind: str, count: int, concurrency: int) -> Load:
    """Run bench/load.py against ``server`` and read its report."""
    cpu = server.cpu_seconds()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(LOAD), server.url, kind, str(count), str(concurrency), SECRET,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    cpu_us = (server.cpu_seconds() - cpu) / count * 1e6
    if proc.returncode != 0:
        raise SystemExit(f"load client failed ({kind})")
    report: dict[str, Any] = json.loads(out)
    expected = "202" if kind == "sentry" else "200"
    ok = report["statuses"] == {expected: count}
    if not ok:
        print(f"{kind}: unexpected answers {report['statuses']}", file=sys.stderr)
    return Load(count / report["elapsed_s"], report["p50_ms"], report["p99_ms"], ok, cpu_us)


async def busy_agent(
    store: Store, settings: Settings, stop: asyncio.Event, printed: list[int]
) -> None:
    """An agent printing at full speed into a task's log, run after run, until ``stop``.

    ``printed[0]`` counts the lines the worker took in.
    """
    new = NewTask(source="bench", repository="o/r", title="busy", prompt="p")
    task_id = (await store.tasks.create(new)).task_id
    async with log_writer(store, settings, task_id) as writer:
        into_log = line_sink(CommandRun(), writer)

        async def sink(stream: LogStream, lines: list[str]) -> None:
            printed[0] += len(lines)
            await into_log(stream, lines)

        # Runs of a second or so, not one cancelled run: the agent exits on its own.
        while not stop.is_set():
            await run_process(
                printer(BUSY_LINES),
                stdin=b"",
                cwd=Path.cwd(),
                on_lines=sink,
                timeout=600,
                kill_grace=1,
                nice=settings.agent_nice,  # as the worker starts it
            )


async def figures(
    url: str, settings: Settings, count: int, concurrency: int, *, busy: bool = True
) -> dict[str, Load]:
    """Intake and /healthz, idle and beside a busy agent, on one API process; intake on two."""
    prefix = settings.key_prefix
    redis = connect(url)
    store = Store.build(redis, settings)
    env = {
        "HOOKAGENT_RATE_LIMIT": "0",
        "HOOKAGENT_MAX_QUEUED": "0",
        "HOOKAGENT_SENTRY_CLIENT_SECRET": SECRET,
    }
    out: dict[str, Load] = {}
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            Server(url, prefix, Path(tmp), env=env) as server,
        ):
            await load(server, "healthz", min(count, 500), concurrency)  # warm-up
            out["sentry"] = await load(server, "sentry", count, concurrency)
            out["healthz"] = await load(server, "healthz", count, concurrency)
            if busy:
                await busy_figures(server, store, settings, count, concurrency, out)
        with (
            tempfile.TemporaryDirectory() as tmp,
            Server(url, prefix, Path(tmp), processes=2, env=env) as server,
        ):
            await load(server, "healthz", min(count, 500), concurrency)  # warm-up
            out["sentry x2"] = await load(server, "sentry", count, concurrency)
    finally:
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()
    return out


async def busy_figures(
    server: Server,
    store: Store,
    settings: Settings,
    count: int,
    concurrency: int,
    out: dict[str, Load],
) -> None:
    """The intake and /healthz loads again while an agent prints at full speed."""
    stop = asyncio.Event()
    printed = [0]
    agent = asyncio.create_task(busy_agent(store, settings, stop, printed))
    try:
        await asyncio.sleep(1.0)  # let it reach full speed
        if agent.done():
            agent.result()
        for kind in ("sentry", "healthz"):
            lines, started = printed[0], time.monotonic()
            busy = await load(server, kind, count, concurrency)
            rate = (printed[0] - lines) / (time.monotonic() - started)
            out[f"{kind} busy"] = busy._replace(agent_lines_s=rate)
    finally:
        stop.set()
        await agent


def _cell(f: Load) -> str:
    bad = "" if f.ok else " (unexpected answers)"
    agent = "" if f.agent_lines_s is None else f"; the agent printed {f.agent_lines_s:,.0f} lines/s"
    return (
        f"{f.rate:,.0f} req/s, p50 {f.p50_ms:.1f} / p99 {f.p99_ms:.1f} ms; "
        f"server CPU {f.cpu_us:,.0f} µs/request{bad}{agent}"
    )


def to_rows(f: dict[str, Load], count: int, concurrency: int, nice: int) -> list[Row]:
    """Table rows: intake and /healthz against the targets, 1 and 2 processes, the busy pair."""
    load_desc = f"{count:,} requests, {concurrency} connections"
    intake, health = f["sentry"], f["healthz"]
    intake_met = (
        intake.ok
        and intake.rate >= RATE_TARGET
        and intake.p99_ms <= P99_TARGET_MS
        and intake.cpu_us <= DELIVERY_CPU_TARGET_US
    )
    out = [
        Row(
            "webhook intake",
            f"signed Sentry, new task each, 1 API process; {load_desc}",
            f"≥ {RATE_TARGET:,.0f} req/s, p99 ≤ {P99_TARGET_MS:.0f} ms, "
            f"≤ {DELIVERY_CPU_TARGET_US:.0f} µs CPU/request",
            _cell(intake),
            intake_met,
        ),
        Row(
            "webhook intake",
            f"/healthz, 1 API process; {load_desc}",
            f"≤ {HEALTHZ_CPU_TARGET_US:.0f} µs CPU/request",
            _cell(health),
            health.ok and health.cpu_us <= HEALTHZ_CPU_TARGET_US,
        ),
        *scaling_rows(intake, f.get("sentry x2"), load_desc),
    ]
    if "sentry busy" not in f:
        return out
    busy = (f["sentry busy"], f["healthz busy"])
    return [
        *out,
        Row(
            "responsiveness",
            f"webhook, agent printing at full speed (nice {nice}); {load_desc}",
            f"p99 ≤ {P99_TARGET_MS:.0f} ms",
            _cell(busy[0]),
            busy[0].ok and busy[0].p99_ms <= P99_TARGET_MS,
        ),
        Row(
            "responsiveness",
            f"/healthz, agent printing at full speed (nice {nice}); {load_desc}",
            f"p99 ≤ {P99_TARGET_MS:.0f} ms",
            _cell(busy[1]),
            busy[1].ok and busy[1].p99_ms <= P99_TARGET_MS,
        ),
    ]


def scaling_rows(one: Load, two: Load | None, load_desc: str) -> list[Row]:
    """Intake on 2 API processes (measured) and on 4 and 8 (projected from CPU per request)."""
    if two is None:
        return []
    target = f"≥ {SCALING_TARGET} x N x 1 process"
    rows = [
        Row(
            "webhook intake",
            f"signed Sentry, 2 API processes on one port; {load_desc}",
            f"{target} (≥ {SCALING_TARGET * 2 * one.rate:,.0f} req/s)",
            f"{_cell(two)}; {two.rate / one.rate:.2f}x 1 process",
            two.ok and two.rate >= SCALING_TARGET * 2 * one.rate,
        )
    ]
    for n in PROJECTED:
        # N free cores, each spending the measured CPU per request (2 processes' figure).
        rate = n * 1e6 / two.cpu_us
        rows.append(
            Row(
                "webhook intake",
                f"signed Sentry, {n} API processes: **projected**, not measured (a core each)",
                f"{target} (≥ {SCALING_TARGET * n * one.rate:,.0f} req/s)",
                f"projected {rate:,.0f} req/s = {n} x 10^6 / {two.cpu_us:,.0f} µs CPU/request",
                None,
            )
        )
    return rows


async def rows(
    url: str, quick: bool = False, count: int = 0, concurrency: int = 20, busy: bool = True
) -> list[Row]:
    """The bench's rows; ``quick`` sends 2,000 of each instead of 10,000."""
    count = count or (2000 if quick else 10_000)
    # The log capped, the agent's priority lowered (HOOKAGENT_AGENT_NICE) as in production.
    settings = Settings(redis_url=url, key_prefix=f"bench-intake-{uuid.uuid4().hex[:8]}")
    found = await figures(url, settings, count, concurrency, busy=busy)
    return to_rows(found, count, concurrency, settings.agent_nice)


def cli() -> None:
    """Parse arguments; start an embedded Valkey unless --redis-url is given."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 requests per load")
    parser.add_argument("--count", type=int, default=0, help="requests per load")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--no-busy", action="store_true", help="skip the busy-agent loads")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    with valkey(args.redis_url) as url:
        table = asyncio.run(
            rows(url, args.quick, args.count, args.concurrency, busy=not args.no_busy)
        )
    print(f"load average {load_average()}")
    print_rows(table)


if __name__ == "__main__":
    cli()

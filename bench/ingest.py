"""Ingest benchmark: an agent printing N short lines, from its pipe into Redis.

Compares hookagent's path (chunked pipe reads → adapter → batched, fenced Lua appends to a
per-task stream), without and with secret redaction, with the seed's design (``readline()``
then one awaited RPUSH and one EXPIRE per line), in the same run, against the same server.
One line in 1,000 carries a token (a configured secret shaped like a GitHub token), in
both hookagent runs; with redaction it is scrubbed.

    python bench/ingest.py [--lines 1000000] [--seed-lines 100000] [--rounds 1] [--redis-url URL]

Without --redis-url an embedded Valkey is started in a temp dir. Prints one table row each;
with --rounds N the two hookagent runs alternate N times and the best of each is shown.
CPU µs/line is this process's CPU time per line, steadier than lines/s on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

from pydantic import SecretStr
from redis.asyncio import Redis

from common import run
from hookagent.agents.command import CommandRun
from hookagent.agents.runner import run_process
from hookagent.keys import Keys
from hookagent.models import NewTask, utc_iso
from hookagent.redact import Redactor
from hookagent.secret_values import build_redactor
from hookagent.settings import Settings
from hookagent.store import Store, connect
from hookagent.store.writer import LogWriter
from hookagent.worker import line_sink

TOKEN_EVERY = 1000
# Fake, but configured and shaped like a GitHub token: both kinds of rule see it.
TOKEN = "ghp_" + "0123456789BenchFakeToken0123456789ab"


def printer(lines: int) -> list[str]:
    """An 'agent' that prints ``lines`` short lines as fast as it can, a few with a token."""
    code = (
        "import sys\n"
        f"n, every, token = {lines}, {TOKEN_EVERY}, {TOKEN!r}\n"
        "w = sys.stdout.write\n"
        "for s in range(0, n, 10000):\n"
        "    w(''.join(f'line {i} of the agent output\\n' if i % every else\n"
        "              f'line {i} pushed with {token}\\n' for i in range(s, min(n, s + 10000))))\n"
    )
    return [sys.executable, "-c", code]


def bench_redactor() -> Redactor:
    """Secrets configured as in production: every secret setting and model API keys."""
    fake = "0123456789abcdefFAKE"
    settings = Settings(
        github_token=SecretStr(TOKEN),
        github_webhook_secret=SecretStr(f"gh-webhook-{fake}"),
        jira_webhook_secret=SecretStr(f"jira-webhook-{fake}"),
        sentry_client_secret=SecretStr(f"sentry-client-{fake}"),
        git_url_template=f"https://x-access-token:{TOKEN}@github.com/{{repo}}.git",
    )
    environ = {"ANTHROPIC_API_KEY": f"sk-ant-api03-{fake}", "OPENAI_API_KEY": f"sk-proj-{fake}"}
    return build_redactor(settings, environ)


FOLLOWER = """
import sys, time
from redis import Redis
url, key, lines = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = Redis.from_url(url, decode_responses=True)
client.ping()
print("ready", flush=True)
last = "0-0"
while True:
    for _, entries in client.xread({key: last}, block=10000, count=10000) or []:
        last = entries[-1][0]
    if int(last.partition("-")[2]) >= lines:
        print(time.time(), flush=True)
        break
"""


async def ours(
    redis: Redis, url: str, lines: int, redactor: Redactor | None = None
) -> tuple[float, float, float]:
    """Lines/s from pipe to Redis, the delay until a blocked reader sees the last line, and
    this process's CPU µs per line (steadier than wall time on a shared machine)."""
    settings = Settings(key_prefix=f"bench-{uuid.uuid4().hex[:8]}", log_max_lines=lines + 10)
    store = Store.build(redis, settings)
    task = await store.tasks.create(
        NewTask(source="bench", repository="o/r", title="t", prompt="p")
    )
    log_key = Keys(settings.key_prefix).logs(task.task_id)
    # The follower runs in its own process, like an API server would, so its parsing does
    # not compete with the ingest path for this process's CPU.
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FOLLOWER, url, log_key, str(lines), stdout=asyncio.subprocess.PIPE
    )
    assert follower.stdout is not None
    assert (await follower.stdout.readline()).strip() == b"ready"
    run = CommandRun()
    last_read = 0.0
    async with LogWriter(
        store.logs,
        task.task_id,
        index=store.search,  # as the worker writes: with the search index
        token="",
        attempt=1,
        batch_lines=settings.log_batch_lines,
        flush_ms=settings.log_flush_ms,
        line_max=settings.log_line_max,
        raw_max=settings.log_raw_max,
    ) as writer:
        sink = line_sink(run, writer, redactor=redactor)

        async def timed_sink(stream, chunk):  # type: ignore[no-untyped-def]
            nonlocal last_read
            last_read = time.time()
            await sink(stream, chunk)

        started, cpu = time.perf_counter(), time.process_time()
        result = await run_process(
            printer(lines),
            stdin=b"",
            cwd=Path.cwd(),
            on_lines=timed_sink,
            timeout=600,
            kill_grace=1,
        )
    stored, cpu = time.perf_counter(), time.process_time() - cpu
    seen = float((await follower.stdout.readline()).decode())
    await follower.wait()
    total = await store.logs.total(task.task_id)
    if result.exit_code != 0 or total != lines:
        raise SystemExit(f"bench run broken: exit {result.exit_code}, stored {total} of {lines}")
    sample, _ = await store.logs.read(task.task_id, offset=TOKEN_EVERY, limit=1)
    if (TOKEN in sample[0].message) != (redactor is None):
        raise SystemExit(f"bench run broken: token line reads {sample[0].message!r}")
    await redis.delete(log_key, Keys(settings.key_prefix).task(task.task_id))
    async for key in redis.scan_iter(match=f"{settings.key_prefix}:search:*", count=1000):
        await redis.delete(key)
    return lines / (stored - started), (seen - last_read) * 1000, cpu / lines * 1e6


async def seed_design(redis: Redis, lines: int) -> float:
    """The seed's worker: readline(), then RPUSH + EXPIRE awaited per line."""
    key = f"bench-seed-{uuid.uuid4().hex[:8]}:logs"
    proc = await asyncio.create_subprocess_exec(
        *printer(lines), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    started = time.perf_counter()
    while line := await proc.stdout.readline():
        entry = {"timestamp": utc_iso(), "message": f"[stdout] {line.decode().rstrip()}"}
        await redis.rpush(key, json.dumps(entry))
        await redis.expire(key, 86400)
    await proc.wait()
    elapsed = time.perf_counter() - started
    stored = await redis.llen(key)
    await redis.delete(key)
    if stored != lines:
        raise SystemExit(f"seed run broken: stored {stored} of {lines}")
    return lines / elapsed


async def main(args: argparse.Namespace) -> None:
    """Run both designs and print a table."""
    redis = connect(args.redis_url)
    redactor = bench_redactor()
    plain: list[tuple[float, float, float]] = []
    redacted: list[tuple[float, float, float]] = []
    try:
        for _ in range(args.rounds):
            plain.append(await ours(redis, args.redis_url, args.lines))
            redacted.append(await ours(redis, args.redis_url, args.lines, redactor))
        seed_rate = await seed_design(redis, args.seed_lines)
    finally:
        await redis.aclose()
    rate, delay, _ = max(plain)
    red_rate, red_delay, _ = max(redacted)
    cpu, red_cpu = min(p[2] for p in plain), min(r[2] for r in redacted)
    print("| design | lines | lines/s | last line visible after | CPU µs/line |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| hookagent (batched stream appends) | {args.lines:,} | {rate:,.0f} | {delay:.1f} ms "
        f"| {cpu:.1f} |"
    )
    print(
        f"| hookagent + redaction ({redactor.secret_count} secret texts, 1 line in "
        f"{TOKEN_EVERY:,} with a token) | {args.lines:,} | {red_rate:,.0f} | {red_delay:.1f} ms "
        f"| {red_cpu:.1f} |"
    )
    print(f"| seed (RPUSH + EXPIRE per line) | {args.seed_lines:,} | {seed_rate:,.0f} | - | - |")
    print(f"\nspeed-up: {rate / seed_rate:.1f}x")
    print(
        f"redaction: {red_rate / rate:.2f}x the rate without ({1 - red_rate / rate:+.1%}), "
        f"{red_cpu / cpu:.2f}x the CPU per line ({red_cpu / cpu - 1:+.1%})"
    )
    if args.rounds > 1:
        runs = ", ".join(f"{p[0]:,.0f}/{r[0]:,.0f}" for p, r in zip(plain, redacted, strict=True))
        print(f"rounds (without/with): {runs}")


def cli() -> None:
    """Parse arguments; start an embedded Valkey unless --redis-url is given."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed-lines", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs, best shown")
    parser.add_argument("--redis-url")
    run(main, parser.parse_args())


if __name__ == "__main__":
    cli()

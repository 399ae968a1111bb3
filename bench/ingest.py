"""Ingest benchmark: an agent printing N short lines, from its pipe into Redis.

Compares hookagent's path (chunked pipe reads → adapter → batched, fenced Lua appends of
chunks of lines to a per-task stream), without and with secret redaction, with the seed's
design (``readline()`` then one awaited RPUSH and one EXPIRE per line), in the same run,
against the same server. One line in 1,000 carries a token (a configured secret shaped like
a GitHub token), in both hookagent runs; with redaction it is scrubbed. Memory per line is
``MEMORY USAGE`` of the log key (and ``used_memory`` growth) after the run; the previous
design's (one stream entry per line) is measured on the same lines for comparison.

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
from typing import NamedTuple

from pydantic import SecretStr
from redis.asyncio import Redis

from common import log_writer, run
from hookagent.agents.command import CommandRun
from hookagent.agents.runner import run_process
from hookagent.models import NewTask, utc_iso
from hookagent.redact import Redactor
from hookagent.secret_values import build_redactor
from hookagent.settings import Settings
from hookagent.store import Store, connect
from hookagent.store.keys import Keys
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
last, end = "0-0", 0
while True:
    for _, entries in client.xread({key: last}, block=10000, count=10000) or []:
        last, fields = entries[-1]
        # A chunk's id is 0-<first seq + 1> and n its line count: where the log now ends.
        end = int(last.partition("-")[2]) - 1 + int(fields["n"])
    if end >= lines:
        print(time.time(), flush=True)
        break
"""


class Run(NamedTuple):
    """One hookagent run: lines/s, last line visible after (ms), CPU µs/line, memory B/line."""

    rate: float
    delay_ms: float
    cpu_us: float
    key_bytes: float
    used_bytes: float


async def used_memory(redis: Redis) -> int:
    """The server's ``used_memory``."""
    info = await redis.info("memory")
    return int(info["used_memory"])


async def ours(redis: Redis, url: str, lines: int, redactor: Redactor | None = None) -> Run:
    """Lines/s from pipe to Redis, the delay until a blocked reader sees the last line, this
    process's CPU µs per line (steadier than wall time on a shared machine), and the log's
    Redis memory per line (``MEMORY USAGE`` of its key; ``used_memory`` growth, which also
    counts the task hash and the search index)."""
    used_before = await used_memory(redis)
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
    # as the worker writes: with the search index
    async with log_writer(store, settings, task.task_id) as writer:
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
    # Line 0 carries the token (every line whose number is a multiple of TOKEN_EVERY does),
    # so a run of fewer lines than TOKEN_EVERY still has one to check.
    sample, _ = await store.logs.read(task.task_id, offset=0, limit=1)
    if (TOKEN in sample[0].message) != (redactor is None):
        raise SystemExit(f"bench run broken: token line reads {sample[0].message!r}")
    key_bytes = int(await redis.memory_usage(log_key, samples=0) or 0)
    used_bytes = await used_memory(redis) - used_before
    await redis.delete(log_key, Keys(settings.key_prefix).task(task.task_id))
    async for key in redis.scan_iter(match=f"{settings.key_prefix}:search:*", count=1000):
        await redis.delete(key)
    return Run(
        lines / (stored - started),
        (seen - last_read) * 1000,
        cpu / lines * 1e6,
        key_bytes / lines,
        used_bytes / lines,
    )


# The previous design, one stream entry per line, written server-side in batches: only
# for its memory per line, measured in the same run.
_PER_LINE = """
local seq = tonumber(ARGV[1])
for _, row in ipairs(cjson.decode(ARGV[2])) do
  seq = seq + 1
  redis.call('XADD', KEYS[1], '0-' .. seq, 'ts', row[1], 'stream', 'stdout', 'msg', row[2],
    'attempt', 1, 'kind', 'text')
end
"""


async def per_line_memory(redis: Redis, lines: int) -> float:
    """Memory per line of the previous design (one stream entry per line) for ``lines``."""
    key = f"bench-per-line-{uuid.uuid4().hex[:8]}:logs"
    script = redis.register_script(_PER_LINE)
    for start in range(0, lines, 10_000):
        rows = [
            (utc_iso(), f"[stdout] line {i} of the agent output")
            for i in range(start, min(lines, start + 10_000))
        ]
        await script(keys=[key], args=[start, json.dumps(rows)])
    size = int(await redis.memory_usage(key, samples=0) or 0)
    await redis.delete(key)
    return size / lines


async def seed_design(redis: Redis, lines: int) -> tuple[float, float]:
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
    size = int(await redis.memory_usage(key, samples=0) or 0)
    await redis.delete(key)
    if stored != lines:
        raise SystemExit(f"seed run broken: stored {stored} of {lines}")
    return lines / elapsed, size / lines


async def main(args: argparse.Namespace) -> None:
    """Run both designs and print a table."""
    redis = connect(args.redis_url)
    redactor = bench_redactor()
    plain: list[Run] = []
    redacted: list[Run] = []
    try:
        version = (await redis.info("server")).get("valkey_version", "?")
        aof = (await redis.config_get("appendonly")).get("appendonly", "?")
        for _ in range(args.rounds):
            plain.append(await ours(redis, args.redis_url, args.lines))
            redacted.append(await ours(redis, args.redis_url, args.lines, redactor))
        seed_rate, seed_bytes = await seed_design(redis, args.seed_lines)
        per_line_bytes = await per_line_memory(redis, args.lines)
    finally:
        await redis.aclose()
    best, red = max(plain), max(redacted)
    cpu, red_cpu = min(p.cpu_us for p in plain), min(r.cpu_us for r in redacted)
    print(f"server: valkey {version}, appendonly {aof}")
    print(
        "| design | lines | lines/s | last line visible after | CPU µs/line "
        "| log key B/line | used_memory B/line |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| hookagent (chunked stream entries) | {args.lines:,} | {best.rate:,.0f} "
        f"| {best.delay_ms:.1f} ms | {cpu:.1f} | {best.key_bytes:.1f} | {best.used_bytes:.1f} |"
    )
    print(
        f"| hookagent + redaction ({redactor.secret_count} secret texts, 1 line in "
        f"{TOKEN_EVERY:,} with a token) | {args.lines:,} | {red.rate:,.0f} "
        f"| {red.delay_ms:.1f} ms | {red_cpu:.1f} | {red.key_bytes:.1f} | {red.used_bytes:.1f} |"
    )
    print(
        f"| seed (RPUSH + EXPIRE per line) | {args.seed_lines:,} | {seed_rate:,.0f} | - | - "
        f"| {seed_bytes:.1f} | - |"
    )
    print(
        f"| previous (one stream entry per line) | {args.lines:,} | - | - | - "
        f"| {per_line_bytes:.1f} | - |"
    )
    print(f"\nspeed-up: {best.rate / seed_rate:.1f}x")
    print(
        f"redaction: {red.rate / best.rate:.2f}x the rate without "
        f"({1 - red.rate / best.rate:+.1%}), {red_cpu / cpu:.2f}x the CPU per line "
        f"({red_cpu / cpu - 1:+.1%})"
    )
    if args.rounds > 1:
        runs = ", ".join(
            f"{p.rate:,.0f}/{r.rate:,.0f}" for p, r in zip(plain, redacted, strict=True)
        )
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

"""The benchmarks in their tiniest sizes, so they cannot rot: real processes, real Valkey."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "bench"


async def run_bench(script: str, *args: str) -> tuple[int, str]:
    """``python bench/<script> args``; its exit code and everything it printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=100)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def table(output: str, bench: str) -> list[list[str]]:
    """The cells of the printed table's rows for ``bench``."""
    rows = [line.strip("|").split(" | ") for line in output.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows if row[0].strip() == bench]


@pytest.mark.load
@pytest.mark.timeout(110)
async def test_latency_bench_measures_every_line_of_every_follower(redis_url: str) -> None:
    code, out = await run_bench(
        "latency.py", "--rates", "200", "--followers", "3", "--seconds", "1",
        "--redis-url", redis_url,
    )  # fmt: skip
    assert code == 0, out
    rows = table(out, "live latency")
    assert [row[1] for row in rows] == ["200 lines/s, 3 followers"], out
    measured = rows[0][3]
    assert "delivered 100.0%" in measured, out
    assert re.match(r"server CPU [\d.]+ µs per line per follower", measured), out
    p50, p99 = (float(ms) for ms in re.findall(r"p50 (\d+) / p99 (\d+) ms", measured)[0])
    assert 0 < p50 <= p99 < 10_000, out


@pytest.mark.load
@pytest.mark.timeout(110)
async def test_latency_bench_changes_progress_while_the_agent_prints(redis_url: str) -> None:
    code, out = await run_bench(
        "latency.py", "--rates", "200", "--followers", "3", "--seconds", "2",
        "--progress-hz", "20", "--redis-url", redis_url,
    )  # fmt: skip
    assert code == 0, out
    rows = table(out, "live latency")
    assert [row[1] for row in rows] == ["200 lines/s, 3 followers, progress saved 20/s"], out
    measured = rows[0][3]
    assert "delivered 100.0%" in measured, out
    # The feed takes a change at most once a second: one or a few events in 2 s, not 40.
    fewest, most = (int(n) for n in re.findall(r"(\d+)-(\d+) progress events", measured)[0])
    assert 1 <= fewest <= most <= 4, out


@pytest.mark.load
@pytest.mark.timeout(110)
async def test_intake_bench_gets_every_delivery_accepted(redis_url: str) -> None:
    code, out = await run_bench(
        "intake.py", "--count", "60", "--concurrency", "3", "--redis-url", redis_url
    )
    assert code == 0, out
    rows = table(out, "webhook intake") + table(out, "responsiveness")
    assert len(rows) == 7, out  # 1 and 2 processes, /healthz, 4 and 8 projected, busy pair
    projected = [row for row in rows if "projected" in row[1]]
    assert [row[1].split(",")[1].strip() for row in projected] == [
        "4 API processes: **projected**",
        "8 API processes: **projected**",
    ], out
    for row in rows:
        assert "unexpected answers" not in row[3], out
        if row not in projected:
            assert re.match(r"[\d,]+ req/s, p50 [\d.]+ / p99 [\d.]+ ms; server CPU", row[3]), out


async def test_run_names_the_benches_it_knows(redis_url: str) -> None:
    code, out = await run_bench("run.py", "--only", "latency,nonsense", "--redis-url", redis_url)
    assert code == 2, out
    known = "ingest, latency, intake, pages, search, startup"
    assert f"unknown bench(es): nonsense; known: {known}\n" in out


@pytest.mark.timeout(110)
async def test_search_bench_reports_the_tail_and_cpu_of_every_query(redis_url: str) -> None:
    code, out = await run_bench(
        "search.py", "--tasks", "4", "--lines", "300", "--rounds", "3", "--redis-url", redis_url
    )
    assert code == 0, out
    rows = [line.strip("|").split(" | ") for line in out.splitlines() if line.startswith("| `")]
    assert len(rows) == 6, out  # every query: p50, p95, p99, max, server and client CPU
    for row in rows:
        p50, p95, p99, worst, server, client = (float(c.strip(" |")) for c in row[1:])
        assert 0 < p50 <= p95 <= p99 <= worst and server > 0 and client > 0, out
    assert re.search(r"worst query \(highest p95\): `.+`", out), out
    assert re.search(r"\| with index \| [\d,]+, \d+% \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", out), out


@pytest.mark.load
@pytest.mark.timeout(110)
async def test_startup_bench_times_a_first_and_a_second_task(redis_url: str) -> None:
    code, out = await run_bench(
        "startup.py", "--files", "50", "--mbps", "0,100", "--redis-url", redis_url
    )
    assert code == 0, out
    rows = table(out, "startup")
    assert len(rows) == 2, out
    assert "remote over file://" in rows[0][1] and "100 Mbit/s" in rows[1][1]
    for row in rows:
        first, second = (float(s) for s in re.findall(r"(?:first|second) ([0-9.]+) s", row[3]))
        assert 0 < first and 0 < second, out
        cpu = re.findall(r"worker CPU ([0-9.]+) s, ([0-9.]+) s", row[3])
        assert len(cpu) == 1 and all(float(s) > 0 for s in cpu[0]), out

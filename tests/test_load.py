"""A burst of 2,000 signed webhooks from a second process: 202 or 503, one task per acceptance."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
from collections import Counter
from pathlib import Path

import pytest

from hookagent.settings import Settings
from hookagent.store import Store
from tests.processes import free_port, process_env, start_server

# HOOKAGENT_TEST_BURST runs it bigger by hand (HOOKAGENT_TEST_MAX_QUEUED=0 lifts the cap);
# HOOKAGENT_TEST_LOAD_DUMP names a file for the client's raw report (latency by start time).
BURST = int(os.environ.get("HOOKAGENT_TEST_BURST", "2000"))
MAX_QUEUED = os.environ.get("HOOKAGENT_TEST_MAX_QUEUED", "1000")
CONCURRENCY = 50
SECRET = "load-test-sentry-client-secret"
LOAD_CLIENT = Path(__file__).parent / "load_client.py"
# 503 answers we accept: the queue is full (HOOKAGENT_MAX_QUEUED, 1,000 by default, and no
# worker drains it here), or Redis could not keep up in time.
REFUSALS = {"queue_full", "store_unavailable"}


def percentile(sorted_ms: list[float], share: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    return sorted_ms[min(len(sorted_ms) - 1, int(share * len(sorted_ms)))]


@pytest.mark.load
@pytest.mark.timeout(150)
async def test_a_burst_of_signed_webhooks_gets_202_or_503_and_one_task_each(
    settings: Settings, store: Store
) -> None:
    # No rate limit: the burst is meant to reach intake, dedupe and the queue cap.
    env = process_env(
        settings,
        HOOKAGENT_RATE_LIMIT="0",
        HOOKAGENT_MAX_QUEUED=MAX_QUEUED,
        HOOKAGENT_SENTRY_CLIENT_SECRET=SECRET,
    )
    port = free_port()
    server = start_server(env, port)
    try:
        args = (f"http://127.0.0.1:{port}", SECRET, str(BURST), str(CONCURRENCY))
        client = await asyncio.create_subprocess_exec(
            sys.executable, str(LOAD_CLIENT), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(client.communicate(), timeout=100)
    finally:
        server.stop()
    assert client.returncode == 0, err.decode(errors="replace") + server.output
    report = json.loads(out)
    if dump := os.environ.get("HOOKAGENT_TEST_LOAD_DUMP"):
        Path(dump).write_bytes(out)
    results = report["results"]
    assert len(results) == BURST
    codes = Counter(r["status"] for r in results)
    assert set(codes) <= {202, 503}, (codes, server.output[-3000:])
    assert {r["error"] for r in results if r["status"] == 503} <= REFUSALS
    accepted = {r["issue"]: r["task_id"] for r in results if r["status"] == 202}
    assert len(accepted) == codes[202], "each incident answered once"

    tasks = await store.tasks.list(status=None, limit=BURST * 2)
    per_incident = Counter(t.external_id for t in tasks)
    assert per_incident.most_common(1)[0][1] == 1, "no incident has two tasks"
    assert {t.external_id: t.task_id for t in tasks} == accepted, "exactly the accepted ones"

    rate = BURST / report["elapsed_s"]
    figures = [f"burst {BURST} x {CONCURRENCY} connections, {rate:.0f} req/s"]
    for code in (None, 202, 503):
        ms = sorted(r["ms"] for r in results if code in (None, r["status"]))
        if ms:
            name = "all" if code is None else str(code)
            figures.append(f"{name}: {len(ms)}, p50 {statistics.median(ms):.0f} ms, "
                           f"p99 {percentile(ms, 0.99):.0f} ms")  # fmt: skip
    print("; ".join(figures))  # noqa: T201 - the figures for the README, shown with -s

"""A burst of signed Sentry deliveries, each a distinct incident; prints one JSON report.

Run as its own process (``python tests/load_client.py URL SECRET COUNT CONCURRENCY``) so
the client's work does not share an event loop, or a GIL, with the server's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

FIXTURE = Path(__file__).parent / "fixtures" / "webhooks" / "sentry-event-alert.json"


def deliveries(secret: str, count: int) -> list[tuple[str, bytes, str]]:
    """``(issue id, body, signature)`` for ``count`` new incidents, signed before the clock."""
    template = json.loads(FIXTURE.read_bytes())
    run = uuid.uuid4().hex[:8]
    out = []
    for number in range(count):
        issue = f"load-{run}-{number}"
        template["data"]["event"]["issue_id"] = issue
        body = json.dumps(template).encode()
        out.append((issue, body, hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()))
    return out


async def send(url: str, secret: str, count: int, concurrency: int) -> dict[str, Any]:
    """Send every delivery over ``concurrency`` connections; the answers and timings."""
    todo: asyncio.Queue[tuple[str, bytes, str]] = asyncio.Queue()
    for item in deliveries(secret, count):
        todo.put_nowait(item)
    results: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    began = time.perf_counter()

    async def worker(http: httpx.AsyncClient) -> None:
        while not todo.empty():
            issue, body, signature = todo.get_nowait()
            headers = {"content-type": "application/json", "sentry-hook-signature": signature}
            started = time.perf_counter()
            response = await http.post("/webhooks/sentry", content=body, headers=headers)
            took = time.perf_counter() - started
            answer = response.json()
            results.append(
                {
                    "issue": issue,
                    "status": response.status_code,
                    "ms": took * 1000,
                    "at_s": started - began,
                    "task_id": answer.get("task_id"),
                    "error": answer.get("error"),
                }
            )

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker(http))
        elapsed = time.perf_counter() - started
    return {"elapsed_s": elapsed, "results": results}


def main(argv: list[str]) -> int:
    """Parse the arguments, send, print the report."""
    url, secret, count, concurrency = argv[0], argv[1], int(argv[2]), int(argv[3])
    report = asyncio.run(send(url, secret, count, concurrency))
    sys.stdout.write(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

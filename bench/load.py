"""Load client for bench/intake.py, in a process of its own: keep-alive HTTP/1.1 over raw sockets.

    python bench/load.py URL KIND COUNT CONCURRENCY SECRET

KIND is ``sentry`` (COUNT signed Sentry deliveries, each a new incident: a new task each)
or ``healthz`` (COUNT ``GET /healthz``). Requests are built and signed before the clock
starts; CONCURRENCY connections each send one request and wait for its answer (a closed
loop). Prints one JSON report: elapsed seconds, p50/p99 ms, the answers' status counts.
An HTTP client library would cost this process more than the server spends per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from common import percentiles

FIXTURE = (
    Path(__file__).parent.parent / "tests" / "fixtures" / "webhooks" / "sentry-event-alert.json"
)


def sentry_requests(host: str, secret: str, count: int) -> list[bytes]:
    """``count`` signed deliveries of the fixture, each with its own issue id."""
    template = json.loads(FIXTURE.read_bytes())
    run = uuid.uuid4().hex[:8]
    out = []
    for number in range(count):
        template["data"]["event"]["issue_id"] = f"bench-{run}-{number}"
        body = json.dumps(template).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        head = (
            f"POST /webhooks/sentry HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nSentry-Hook-Resource: event_alert\r\n"
            f"Sentry-Hook-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def answer(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length framed); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head[9:12])


async def main(url: str, kind: str, count: int, concurrency: int, secret: str) -> None:
    """Send every request over ``concurrency`` connections; print the report."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if kind == "sentry":
        requests = sentry_requests(f"{host}:{port}", secret, count)
    else:
        requests = [f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()] * count
    todo = iter(requests)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for request in todo:
                started = time.perf_counter()
                writer.write(request)
                statuses[await answer(reader)] += 1
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            writer.close()

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(connection())
    elapsed = time.perf_counter() - started
    p50, p99 = percentiles(latencies)
    report = {"elapsed_s": elapsed, "p50_ms": p50, "p99_ms": p99, "statuses": statuses}
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    url_arg, kind_arg, count_arg, conc_arg, secret_arg = sys.argv[1:6]
    asyncio.run(main(url_arg, kind_arg, int(count_arg), int(conc_arg), secret_arg))

"""SSE followers for bench/latency.py, in a process of their own: N connections to one task.

    python bench/follow.py URL TASK_ID FOLLOWERS MEASURED TIMEOUT_S

Raw asyncio sockets, not an HTTP client: a thousand followers receiving a thousand lines a
second each must cost this process little. Prints ``ready`` once every follower has its
stream's opening comment, then, when every stream has sent ``event: end`` (or TIMEOUT_S has
passed), one JSON report on stdout. The agent prints ``T<time.time_ns()>`` in each line;
the first ``MEASURED`` followers time every line they receive, the others time the oldest
line of each read (the worst of that read) and count the rest. ``reads`` counts every
follower's socket reads: about the batches the server wrote (fewer when reads coalesce);
``progress`` the fewest and most ``event: progress`` any measured follower received.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from common import percentiles

# The first stamp of each event (an entry's JSON may carry the line twice: message and raw).
STAMP = re.compile(rb"\nid: \d+\ndata: [^\n]*?T(\d{19})")
CONNECTS_AT_ONCE = 100


@dataclass
class Follower:
    """One follower's figures."""

    measured: bool
    lines: int = 0
    reads: int = 0
    progress: int = 0
    ended: bool = False
    latencies_ms: list[float] = field(default_factory=list)

    def take_all(self, buf: bytes, now: int) -> bytes:
        """Time every complete event's line; returns the incomplete rest."""
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            return buf
        done = buf[: cut + 1]
        stamps = STAMP.findall(done)
        self.lines += len(stamps)
        self.latencies_ms += [(now - int(s)) / 1e6 for s in stamps]
        self.progress += done.count(b"\nevent: progress\n")
        self.ended = b"event: end\n" in done
        return buf[cut + 1 :]

    def take_head(self, buf: bytes, now: int) -> bytes:
        """Count the events, time the oldest line only: memchr speed, no per-line Python."""
        self.lines += buf.count(b"\nid: ") - buf.count(b"\nevent: status")
        if first := STAMP.search(buf):
            self.latencies_ms.append((now - int(first[1])) / 1e6)
        self.ended = b"event: end\n" in buf
        # The last few bytes again next time, so a marker split between reads is still seen
        # (no marker fits in them whole, so none is counted twice).
        return buf[-4:]


async def follow(
    host: str, port: int, path: str, me: Follower, opened: asyncio.Event, gate: asyncio.Semaphore
) -> None:
    """Read one SSE stream to its ``event: end``, timing the lines' stamps."""
    async with gate:
        reader, writer = await asyncio.open_connection(host, port)
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"follower refused: {head[:200]!r}")
    rest = b"\n"  # so the first event also starts with "\n"
    try:
        while not me.ended:
            data = await reader.read(1 << 17)
            if not data:
                return
            now = time.time_ns()
            me.reads += 1
            if not opened.is_set() and b": following" in data:
                opened.set()
            if me.measured:
                rest = me.take_all(rest + data, now)
            else:
                rest = me.take_head(rest + data, now)
    finally:
        writer.close()


async def main(url: str, task_id: str, count: int, measured: int, timeout: float) -> None:
    """Open ``count`` streams, say ready, follow them to their end, print the report."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = f"/tasks/{task_id}/logs/stream"
    followers = [Follower(measured=n < measured) for n in range(count)]
    opened = [asyncio.Event() for _ in followers]
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(follow(host, port, path, f, o, gate))
        for f, o in zip(followers, opened, strict=True)
    ]
    waiting = [asyncio.create_task(o.wait()) for o in opened]
    await asyncio.wait(waiting, timeout=60)
    for task in tasks:
        if task.done() and task.exception() is not None:
            raise SystemExit(f"a follower failed: {task.exception()!r}")
    if not all(o.is_set() for o in opened):
        raise SystemExit(f"only {sum(o.is_set() for o in opened)} of {count} streams opened")
    sys.stdout.write(f"ready {time.perf_counter() - started:.1f}\n")
    sys.stdout.flush()
    await asyncio.wait(tasks, timeout=timeout)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    measured_ms = [ms for f in followers if f.measured for ms in f.latencies_ms]
    heads_ms = [ms for f in followers if not f.measured for ms in f.latencies_ms]
    report = {
        "ended": sum(f.ended for f in followers),
        "lines": sum(f.lines for f in followers),
        "reads": sum(f.reads for f in followers),
        "progress": [
            min(f.progress for f in followers if f.measured),
            max(f.progress for f in followers if f.measured),
        ],
        "measured_ms": percentiles(measured_ms),
        "read_heads_ms": percentiles(heads_ms or measured_ms),
        "cpu_s": time.process_time(),
    }
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    url_arg, task_arg, count_arg, measured_arg, timeout_arg = sys.argv[1:6]
    run = main(url_arg, task_arg, int(count_arg), int(measured_arg), float(timeout_arg))
    try:
        import uvloop  # the server's loop too: reading a thousand streams costs less on it
    except ImportError:
        asyncio.run(run)
    else:
        uvloop.run(run)

"""What the benchmarks share: run against --redis-url, or an embedded Valkey in a temp dir."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from hookagent.cli.embedded import EmbeddedValkey
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.writer import LogWriter


def run(
    main: Callable[[argparse.Namespace], Coroutine[Any, Any, None]], args: argparse.Namespace
) -> None:
    """``main(args)`` with ``args.redis_url`` set, starting (and stopping) a Valkey if needed."""
    if args.redis_url:
        asyncio.run(main(args))
        return
    with tempfile.TemporaryDirectory() as tmp, EmbeddedValkey(Path(tmp)) as valkey:
        args.redis_url = valkey.url
        asyncio.run(main(args))


SERVING = "Uvicorn running on"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``samples`` (in their unit); NaN for no samples."""
    if len(samples) < 2:
        value = samples[0] if samples else math.nan
        return value, value
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[98]


class Server:
    """``hookagent server`` on a free loopback port in its own process (no tokens: loopback).

    ``processes``: API processes (``HOOKAGENT_API_PROCESSES``); more than one run under a
    supervisor process, and :meth:`cpu_seconds` counts them all.
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        data_dir: Path,
        *,
        processes: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
        environ |= {
            "HOOKAGENT_REDIS_URL": redis_url,
            "HOOKAGENT_KEY_PREFIX": prefix,
            "HOOKAGENT_DATA_DIR": str(data_dir),
            "HOOKAGENT_HOST": "127.0.0.1",
            "HOOKAGENT_API_PROCESSES": str(processes),
            **(env or {}),
        }
        self._waiting = processes  # one "Uvicorn running on" line per API process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hookagent.cli", "server", "--port", str(self.port)],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(60) or self.proc.poll() is not None:
            self.stop()
            raise SystemExit("hookagent server did not start:\n" + "".join(self.lines[-30:]))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            # Access lines are counted, not kept: a bench sends hundreds of thousands.
            if '" 20' not in line:
                self.lines.append(line)
            if SERVING in line:
                self._waiting -= 1
                if self._waiting <= 0:
                    self._ready.set()
        self._ready.set()

    def cpu_seconds(self) -> float:
        """The server's CPU time so far (user + system) with its live API processes, from /proc."""
        return sum(_cpu_seconds(pid) for pid in _tree(self.proc.pid))

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants now."""
    try:
        listing = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return [pid]
    return [pid, *(p for child in listing.split() for p in _tree(int(child)))]


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:  # it just exited
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    """The 1-minute load average, for the record."""
    return f"{os.getloadavg()[0]:.1f}"


class Row(NamedTuple):
    """One line of the benchmark table: what, under which conditions, target and figure."""

    bench: str
    case: str
    target: str
    measured: str
    met: bool | None  # None: no target for this row


@contextlib.contextmanager
def valkey(url: str | None) -> Iterator[str]:
    """``url``, or the URL of an embedded Valkey started in a temp dir for the block."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as tmp, EmbeddedValkey(Path(tmp)) as server:
        yield server.url


def print_rows(rows: list[Row]) -> None:
    """The rows as one markdown table."""
    print("| bench | case | target | measured | met? |")
    print("|---|---|---|---|---|")
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "**no**")
        print(f"| {row.bench} | {row.case} | {row.target} | {row.measured} | {met} |")


def log_writer(store: Store, settings: Settings, task_id: str, *, index: bool = True) -> LogWriter:
    """A task's log writer as the worker builds it (attempt 1, with the search index)."""
    return LogWriter(
        store.logs,
        task_id,
        index=store.search if index else None,
        token="",
        attempt=1,
        batch_lines=settings.log_batch_lines,
        flush_ms=settings.log_flush_ms,
        line_max=settings.log_line_max,
        raw_max=settings.log_raw_max,
    )

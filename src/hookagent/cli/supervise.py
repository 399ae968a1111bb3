"""``hookagent up``'s process supervisor: the API and the workers in processes of their own.

One process used to run the API and every worker loop on one event loop, so a busy agent
(parsing megabytes of output, git) slowed every request. ``up`` now starts N ``hookagent
server`` and M ``hookagent worker`` processes against one Redis and watches them; ``server
--api-processes N`` runs the same supervisor without workers. The supervisor binds the API's
port once and hands the listening socket to every API process: the kernel queues new
connections on it and whichever process is free accepts, so one port is served by N event
loops (and N cores), and a process restarted after a crash listens on the same socket (no
port in use). A child that dies is restarted. Each live-log follower is served by the
process that accepted it, which follows Redis on its own, so it sees every line whichever
process or worker wrote it. Each child runs in its own session, so a terminal's Ctrl-C
reaches only this supervisor, which stops them in order: the API first (stop accepting),
then the workers (running jobs get ``HOOKAGENT_SHUTDOWN_GRACE`` and are handed back), then
the caller stops Valkey. A second Ctrl-C kills them all at once. They die with this process
(PDEATHSIG), so a SIGKILLed ``up`` leaves no orphan either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field

from hookagent.settings import Settings

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
STOP_MARGIN_S = 10.0
# What `hookagent server` and `worker` exit with when their settings are refused.
EXIT_CONFIG = 2
EXIT_FORCED = 130
# The listening socket's queue of connections not yet accepted, as uvicorn's default.
BACKLOG = 2048
_PR_SET_PDEATHSIG = 1
# Resolved in the parent: nothing may be dlopen'ed between fork and exec.
_PRCTL = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # SIGTERM, not SIGKILL: an orphaned worker still hands its running job back.
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised process: its role (``api``, ``worker-2``), argv and current process."""

    role: str
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    starts: int = field(default=0)
    pass_fds: tuple[int, ...] = ()  # the listening socket, for an API process

    async def start(self, env: dict[str, str]) -> None:
        """Start (or restart) the process in its own session."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            pass_fds=self.pass_fds,
        )
        self.starts += 1
        log.info("started %s (pid %d)", self.role, self.proc.pid)

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process's group (its agents run in groups of their own)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)


def child_argv(command: str, *args: str) -> list[str]:
    """The argv of a ``hookagent <command>`` run by this interpreter."""
    return [sys.executable, "-m", "hookagent.cli", command, *args]


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``, bound as uvicorn binds, for children."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


class Supervisor:
    """Runs API and worker processes until a signal, then stops them in order."""

    def __init__(self, settings: Settings, *, workers: int, api_processes: int = 1) -> None:
        self._settings = settings
        self._env = {**os.environ, "HOOKAGENT_REDIS_URL": str(settings.redis_url)}
        self._listener: socket.socket | None = None
        self._api_processes = api_processes
        self.apis: list[Child] = []
        # One loop per process: a busy agent then holds up one event loop, not several.
        self.workers = [
            Child(f"worker-{n}", child_argv("worker", "--concurrency", "1"))
            for n in range(1, workers + 1)
        ]
        self._stop = asyncio.Event()
        self._exit = 0

    def _api_children(self, listener: socket.socket) -> list[Child]:
        fd = listener.fileno()
        # The host and port name the socket in the children's settings and start-up line.
        s, count = self._settings, self._api_processes
        argv = child_argv("server", "--host", s.host, "--port", str(s.port), "--api-processes", "1")
        return [
            Child(
                "api" if count == 1 else f"api-{n}",
                [*argv, "--listen-fd", str(fd)],
                pass_fds=(fd,),
            )
            for n in range(1, count + 1)
        ]

    async def run(self) -> int:
        """Serve until SIGINT/SIGTERM (or a child refuses its settings); 0 on a clean stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            if self._api_processes:
                self._listener = listen(self._settings.host, self._settings.port)
                self.apis = self._api_children(self._listener)
            children = [*self.apis, *self.workers]
            watchers = [asyncio.create_task(self._watch(c)) for c in children]
            await self._stop.wait()
            await self._stop_in_order()
            await asyncio.gather(*watchers)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self._kill_all()  # only stragglers that outlived their deadline are left here
            if self._listener is not None:
                self._listener.close()
        return self._exit

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            log.warning("second %s: killing every process now", sig.name)
            self._kill_all()
            raise SystemExit(EXIT_FORCED)
        log.info("%s received: stopping the API, then the workers", sig.name)
        self._stop.set()

    def _kill_all(self) -> None:
        for child in [*self.apis, *self.workers]:
            child.signal(signal.SIGKILL)

    async def _watch(self, child: Child) -> None:
        """Keep ``child`` running until the stop: restarted when it dies, unless it refused."""
        while not self._stop.is_set():
            await child.start(self._env)
            proc = child.proc
            if proc is None:  # start() sets it; a narrowing for the type checker
                return
            code = await proc.wait()
            if self._stop.is_set():
                log.info("%s (pid %d) stopped with code %d", child.role, proc.pid, code)
                return
            if code == EXIT_CONFIG:
                # Its settings were refused (its one line says which): a restart every
                # second would print that line forever.
                log.error("%s refused its settings (exit code 2); stopping everything", child.role)
                self._exit = EXIT_CONFIG
                self._stop.set()
                return
            log.error("%s (pid %d) exited with code %d; restarting it", child.role, proc.pid, code)
            # Waited on the stop event, so a shutdown during the pause is not held up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESTART_DELAY_S):
                    await self._stop.wait()

    async def _stop_in_order(self) -> None:
        await _terminate(self.apis, STOP_MARGIN_S)
        s = self._settings
        # A worker waits up to the grace for its job, then kills the agent (kill grace).
        await _terminate(self.workers, s.shutdown_grace + s.kill_grace + STOP_MARGIN_S)
        log.info("API and workers stopped")


async def _terminate(children: list[Child], deadline_s: float) -> None:
    """SIGTERM ``children``, wait up to ``deadline_s`` for them, SIGKILL whoever is left."""
    running = [c.proc for c in children if c.proc is not None and c.proc.returncode is None]
    for child in children:
        child.signal(signal.SIGTERM)
    if not running:
        return
    waits = [asyncio.create_task(p.wait()) for p in running]
    _, late = await asyncio.wait(waits, timeout=deadline_s)
    if late:
        log.error("%d process(es) did not stop within %.0fs; killing them", len(late), deadline_s)
        for child in children:
            child.signal(signal.SIGKILL)
        await asyncio.wait(late, timeout=STOP_MARGIN_S)

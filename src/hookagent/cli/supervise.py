"""``hookagent up``'s process supervisor: the API and the workers in processes of their own.

One process used to run the API and every worker loop on one event loop, so a busy agent
(parsing megabytes of output, git) slowed every request. ``up`` now starts ``hookagent
server`` and N ``hookagent worker`` processes against one Redis and watches them: a worker
that dies is restarted, an API that dies ends ``up`` (a port in use must not loop forever).
Each child runs in its own session, so a terminal's Ctrl-C reaches only this supervisor,
which stops them in order: API first (stop accepting), then the workers (running jobs get
``HOOKAGENT_SHUTDOWN_GRACE`` and are handed back), then the caller stops Valkey. A second
Ctrl-C kills them all at once. They die with this process (PDEATHSIG), so a SIGKILLed
``up`` leaves no orphan either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from dataclasses import dataclass, field

from hookagent.settings import Settings

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
STOP_MARGIN_S = 10.0
EXIT_FAILED = 1
# What `hookagent server` and `worker` exit with when their settings are refused.
EXIT_CONFIG = 2
EXIT_FORCED = 130
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

    async def start(self, env: dict[str, str]) -> None:
        """Start (or restart) the process in its own session."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, env=env, start_new_session=True, preexec_fn=_die_with_parent
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


class Supervisor:
    """Runs the API and ``workers`` worker processes until a signal, then stops them in order."""

    def __init__(self, settings: Settings, *, workers: int) -> None:
        self._settings = settings
        self._env = {**os.environ, "HOOKAGENT_REDIS_URL": str(settings.redis_url)}
        host, port = settings.host, str(settings.port)
        self.api = Child("api", child_argv("server", "--host", host, "--port", port))
        # One loop per process: a busy agent then holds up one event loop, not several.
        self.workers = [
            Child(f"worker-{n}", child_argv("worker", "--concurrency", "1"))
            for n in range(1, workers + 1)
        ]
        self._stop = asyncio.Event()
        self._exit = 0

    async def run(self) -> int:
        """Serve until SIGINT/SIGTERM (or the API dies); 0 on a clean stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            watchers = [asyncio.create_task(self._watch(c)) for c in [self.api, *self.workers]]
            await self._stop.wait()
            await self._stop_in_order()
            await asyncio.gather(*watchers)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self._kill_all()  # only stragglers that outlived their deadline are left here
        return self._exit

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            log.warning("second %s: killing every process now", sig.name)
            self._kill_all()
            raise SystemExit(EXIT_FORCED)
        log.info("%s received: stopping the API, then the workers", sig.name)
        self._stop.set()

    def _kill_all(self) -> None:
        for child in [self.api, *self.workers]:
            child.signal(signal.SIGKILL)

    async def _watch(self, child: Child) -> None:
        """Keep ``child`` running until the stop: a dead worker restarts, a dead API ends all."""
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
            if child is self.api:
                log.error("the API process exited with code %d; stopping everything", code)
                self._exit = EXIT_FAILED
                self._stop.set()
                return
            log.error("%s (pid %d) exited with code %d; restarting it", child.role, proc.pid, code)
            # Waited on the stop event, so a shutdown during the pause is not held up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESTART_DELAY_S):
                    await self._stop.wait()

    async def _stop_in_order(self) -> None:
        await _terminate([self.api], STOP_MARGIN_S)
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

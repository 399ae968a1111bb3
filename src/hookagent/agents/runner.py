"""Runs an agent CLI as a subprocess and hands its output over line by line."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import platform
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hookagent.agents.capture import Capture, Wakeup
from hookagent.agents.lines import LineSplitter
from hookagent.errors import AgentError
from hookagent.models import LogStream

CHUNK_BYTES = 256 * 1024
_PR_SET_PDEATHSIG = 1
# ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT), linux/ioprio.h.
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_IDLE = 3 << 13
# The syscall has no libc wrapper; its number per architecture (asm/unistd.h).
_IOPRIO_SET_NR = {"x86_64": 251, "aarch64": 30, "riscv64": 30, "i686": 289, "armv7l": 314}
OnLines = Callable[[LogStream, list[str]], Awaitable[None]]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunResult:
    """How the process ended."""

    exit_code: int | None
    timed_out: bool
    duration_s: float

    @property
    def describe(self) -> str:
        """A short human reason, e.g. ``exit code 2`` or ``killed by SIGKILL``."""
        if self.timed_out:
            return f"timed out after {self.duration_s:.0f}s"
        if self.exit_code is None:
            return "no exit code"
        if self.exit_code < 0:
            return f"killed by {signal.Signals(-self.exit_code).name}"
        return f"exit code {self.exit_code}"


async def run_process(
    argv: list[str],
    *,
    stdin: bytes,
    cwd: Path,
    on_lines: OnLines,
    timeout: float,
    kill_grace: float,
    env: Mapping[str, str] | None = None,
    max_line_bytes: int = 64 * 1024 * 1024,
    on_start: Callable[[int], Awaitable[None]] | None = None,
    nice: int = 0,
) -> RunResult:
    """Run ``argv`` in its own process group, feed it ``stdin``, stream its lines.

    Never a shell: ``argv`` goes to exec as is. On timeout or cancellation the whole group
    gets SIGTERM, then SIGKILL after ``kill_grace`` seconds; helpers the agent left behind
    are killed when it exits. ``nice`` > 0: the process (and all it starts) runs that much
    nicer than the caller, in the idle I/O class; the caller keeps its own priorities.
    """
    started = time.monotonic()
    with contextlib.ExitStack() as resources:
        captures = {
            stream: resources.enter_context(contextlib.closing(Capture()))
            for stream in (LogStream.STDOUT, LogStream.STDERR)
        }
        wakeup = resources.enter_context(contextlib.closing(Wakeup(list(captures.values()))))
        proc = await _spawn(argv, cwd, env, captures, nice)
        timed_out = False
        try:
            if on_start is not None:
                await on_start(proc.pid)  # its process group id too (start_new_session)
            if nice > 0:
                await _lower_autogroup(proc.pid)
            async with asyncio.timeout(timeout):
                async with asyncio.TaskGroup() as group:
                    group.create_task(_feed(proc, stdin))
                    ended = asyncio.Event()
                    group.create_task(_follow(captures, on_lines, max_line_bytes, wakeup, ended))
                    await proc.wait()
                    # Everything the agent wrote is in the files now (file writes are
                    # synchronous). No pipe end to wait for: helpers it left die with it.
                    _signal_group(proc.pid, signal.SIGKILL)
                    ended.set()
                    wakeup.event.set()
        except TimeoutError:
            timed_out = True
        except BaseExceptionGroup as group:
            # A reader's sink failed (Redis gone, lease fenced): surface that error itself.
            raise group.exceptions[0] from None
        finally:
            # Runs on success, timeout, cancellation and errors alike: no process outlives it.
            await _stop_group(proc, kill_grace)
    return RunResult(proc.returncode, timed_out, time.monotonic() - started)


async def _spawn(
    argv: list[str],
    cwd: Path,
    env: Mapping[str, str] | None,
    captures: dict[LogStream, Capture],
    nice: int,
) -> asyncio.subprocess.Process:
    if nice > 0 and _IOPRIO_SET is None:
        _warn_no_ioprio()
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=captures[LogStream.STDOUT].fd,
            stderr=captures[LogStream.STDERR].fd,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            preexec_fn=functools.partial(_in_child, nice) if nice > 0 else _die_with_parent,
        )
    except FileNotFoundError:
        raise AgentError(
            f"agent binary not found: {argv[0]!r} (is it installed and on PATH?)"
        ) from None
    except PermissionError:
        raise AgentError(f"agent binary is not executable: {argv[0]!r}") from None


# Looked up once, in the parent: between fork and exec the child may only call what is
# already loaded (a dlopen there can deadlock on a lock another thread held at fork time).
_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None
_PRCTL = _LIBC.prctl if _LIBC is not None else None
_IOPRIO_NR = _IOPRIO_SET_NR.get(platform.machine())
# Linux autogroups (CONFIG_SCHED_AUTOGROUP); switched on or off, the file is there.
_AUTOGROUPS = os.path.exists("/proc/self/autogroup")
_AUTOGROUP_TRIES = 20
_IOPRIO_SET = (
    functools.partial(_LIBC.syscall, _IOPRIO_NR)
    if _LIBC is not None and _IOPRIO_NR is not None
    else None
)


def _die_with_parent() -> None:
    # Runs in the child before exec. If the worker is SIGKILLed, the kernel kills the agent
    # too instead of leaving it running unwatched while the job is handed to another worker.
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _in_child(nice: int) -> None:
    # Before exec, in the child only: the priorities are in place before the agent's first
    # instruction, and bwrap and everything the agent starts inherit them. Lowering one's
    # own priority needs no privilege; the kernel caps niceness at 19.
    _die_with_parent()
    os.nice(nice)
    if _IOPRIO_SET is not None:
        # Idle class: the agent's disk I/O waits for everyone else's (on schedulers that
        # honour classes: BFQ; `none` and mq-deadline ignore them). A failure leaves the
        # class as it was: the CPU priority alone still holds.
        _IOPRIO_SET(_IOPRIO_WHO_PROCESS, 0, _IOPRIO_IDLE)


async def _lower_autogroup(pid: int) -> None:
    """Give the agent's session (its own: start_new_session) the agent's niceness.

    Where the kernel groups CPU time by session (autogroup, the default on most
    distributions outside a CPU cgroup), a process's niceness only weighs against its own
    session: without this the agent's session would get as much CPU as the API's.
    """
    if not _AUTOGROUPS:
        return
    for _ in range(_AUTOGROUP_TRIES):
        try:
            value = str(os.getpriority(os.PRIO_PROCESS, pid)).encode()
            with open(f"/proc/{pid}/autogroup", "wb", buffering=0) as group:
                group.write(value)
            return
        except BlockingIOError:
            # EAGAIN: unprivileged, the kernel takes one such change per 100 ms, host-wide.
            await asyncio.sleep(0.1)
        except (FileNotFoundError, ProcessLookupError):
            return  # the agent is gone already: nothing left to lower
        except OSError as exc:
            log.warning("agent CPU share not lowered (its session's autogroup): %s", exc)
            return
    log.warning("agent CPU share not lowered: its session's autogroup stayed busy (EAGAIN)")


@functools.cache
def _warn_no_ioprio() -> None:
    log.warning(
        "agent I/O priority not lowered: no ioprio_set on %s (%s); CPU niceness only",
        sys.platform,
        platform.machine(),
    )


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    if proc.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        # An agent that exits without reading its prompt is not our failure to report here;
        # its exit code tells the story.
        proc.stdin.write(data)
        await proc.stdin.drain()
    proc.stdin.close()


async def _follow(
    captures: dict[LogStream, Capture],
    on_lines: OnLines,
    max_line: int,
    wakeup: Wakeup,
    ended: asyncio.Event,
) -> None:
    """Hand over each stream's lines as the agent writes them, to the last byte."""
    splitters = {stream: LineSplitter(max_line_bytes=max_line) for stream in captures}
    while True:
        wakeup.event.clear()
        # Read before looking: whatever is written after this round wakes the next one.
        last_round = ended.is_set()
        moved = False
        for stream, capture in captures.items():
            chunk = capture.read(CHUNK_BYTES)
            if chunk:
                moved = True
                lines = splitters[stream].feed(chunk)
                if lines:
                    await on_lines(stream, lines)
        if moved:
            continue
        if last_round:
            break
        await wakeup.event.wait()
    for stream, splitter in splitters.items():
        rest = splitter.close()
        if rest:
            await on_lines(stream, rest)


async def _stop_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    pgid = proc.pid  # start_new_session made the child a group leader
    if proc.returncode is None:
        _signal_group(pgid, signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(proc.wait())
        except TimeoutError:
            _signal_group(pgid, signal.SIGKILL)
            await asyncio.shield(proc.wait())
    # The leader is gone; anything it spawned that is still in the group dies too.
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)

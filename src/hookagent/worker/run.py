"""Run the agent CLI for one phase: output into the log, progress saved, stalls watched."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hookagent.agents import Agent, AgentOutcome, AgentRun, TextLines, run_process
from hookagent.agents.runner import OnLines
from hookagent.errors import BudgetExceeded, Stalled
from hookagent.models import LogStream, Phase, utc_iso
from hookagent.race import race, raise_if_cancelling
from hookagent.redact import RedactingStream, Redactor
from hookagent.settings import Settings
from hookagent.store import Parked, Store, StoreUnavailable
from hookagent.store.writer import LogWriter
from hookagent.worker.files import remove_tree
from hookagent.worker.sandbox import sandboxed
from hookagent.worker.workspace import TASK_ID

# The UI shows a run's progress live; more often than once a second is a write nobody sees.
PROGRESS_EVERY_S = 1.0
# Under the data dir: one private directory per task for the CLI's own configuration
# (CODEX_HOME, GEMINI_CLI_HOME), outside every workspace, removed when the run ends, or
# when the task does if the run ended on the model's quota (its session is resumed there).
AGENT_HOMES = "agent-homes"
# A final progress save waiting out a Redis outage tries again after this long, at most.
SAVE_RETRY_MAX_S = 1.0


def task_home(settings: Settings, task_id: str) -> Path:
    """The CLI configuration home of the task's runs (under a 0700 ``agent-homes``)."""
    homes = settings.data_dir.resolve() / AGENT_HOMES
    homes.mkdir(mode=0o700, parents=True, exist_ok=True)
    return homes / task_id


async def sweep_homes(settings: Settings, is_live: Callable[[str], Awaitable[bool]]) -> int:
    """Remove the homes of ended or vanished tasks (a parked one cancelled, say); how many."""
    root = settings.data_dir.resolve() / AGENT_HOMES
    try:
        found = sorted(root.iterdir())
    except FileNotFoundError:
        return 0
    removed = 0
    for home in found:
        if TASK_ID.match(home.name) and not await is_live(home.name):
            await asyncio.to_thread(remove_tree, home)
            removed += 1
    return removed


class Reporter:
    """Saves a run's progress (adapter counters plus phase and timing) at most once a second."""

    def __init__(
        self, store: Store, task_id: str, phase: Phase, run: AgentRun, clock: list[float]
    ) -> None:
        self._store = store
        self._task_id = task_id
        self._phase = phase
        self._run = run
        self._clock = clock
        self._started = time.monotonic()
        self._started_wall = time.time()
        self._saved: dict[str, Any] | None = None

    async def every(self, interval: float) -> None:
        """Save whenever something changed, on a timer; skipped while Redis is away."""
        while True:
            raise_if_cancelling()  # redis-py can swallow a cancel (see race.raise_if_cancelling)
            await asyncio.sleep(interval)
            try:
                await self.save()
            except (*StoreUnavailable, OSError):
                raise_if_cancelling()  # a cancel that came out of Redis as a timeout ends it
                continue  # the agent goes on; the next tick saves the newer progress

    async def save_final(self) -> None:
        """Save the last progress, waiting out a Redis outage (the run is over, Redis next)."""
        backoff = 0.1
        while True:
            try:
                await self.save()
                return
            except (*StoreUnavailable, OSError):
                raise_if_cancelling()
                await asyncio.sleep(backoff)  # waiting out an outage, not polling
                backoff = min(backoff * 2, SAVE_RETRY_MAX_S)

    async def save(self) -> None:
        """Write the progress document if it changed since the last write."""
        snapshot = self._run.progress.snapshot()
        if snapshot == self._saved:
            return
        last_output = self._started_wall + (self._clock[0] - self._started)
        document = {
            "phase": self._phase.value,
            "elapsed_s": round(time.monotonic() - self._started, 1),
            "last_output_at": utc_iso(last_output),
            **snapshot,
        }
        await self._store.tasks.save_progress(self._task_id, document)
        self._saved = snapshot  # only once stored: a failed save is made again


def line_sink(
    run: AgentRun,
    writer: LogWriter,
    clock: list[float] | None = None,
    *,
    redactor: Redactor | None = None,
    budget_usd: float | None = None,
) -> OnLines:
    """Feed agent output, redacted, through the adapter into the log writer (note when).

    Raises :class:`BudgetExceeded` once the cost the agent reports passes ``budget_usd``:
    the runner then stops the agent's process group.
    """
    redacting: dict[LogStream, RedactingStream] = {}

    async def sink(stream: LogStream, lines: list[str]) -> None:
        ts = utc_iso()  # one clock read per chunk: its lines arrived together
        run.progress.lines += len(lines)
        if clock is not None:
            clock[0] = time.monotonic()
        if redactor is not None:
            # Before the adapter: the message, raw event, search terms, plan and progress
            # are all made from these lines. One state per stream: a PEM block on stdout
            # must not swallow stderr.
            if stream not in redacting:
                redacting[stream] = redactor.for_run()
            lines = redacting[stream].redact_lines(lines)
        parsed = run.parse_lines(stream, lines)
        if isinstance(parsed, TextLines):
            # Plain text (a ``command`` agent, any stderr): the batch goes in whole.
            writer.add_lines(parsed.stream, parsed.texts, kind=parsed.kind or "", ts=ts)
        else:
            add = writer.add
            for out in parsed:
                add(out.stream, out.text, kind=out.kind or "", raw=out.raw, ts=ts)
        cost = run.progress.cost_usd
        if budget_usd is not None and cost is not None and cost > budget_usd:
            limit = f"HOOKAGENT_MAX_BUDGET_USD=${dollars(budget_usd)}"
            raise BudgetExceeded(f"budget exceeded: ${dollars(cost)} > {limit}")
        await writer.wait_room()

    return sink


def dollars(amount: float) -> str:
    """An amount with cents, and more digits only when they matter (0.0123, 1.50)."""
    text = f"{amount:.4f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


class AgentSession:
    """Runs an agent in a workspace for one phase and judges the outcome."""

    def __init__(self, *, store: Store, settings: Settings, redactor: Redactor) -> None:
        self._store = store
        self._settings = settings
        self._redactor = redactor

    async def run(
        self,
        agent: Agent,
        path: Path,
        phase: Phase,
        prompt: bytes,
        writer: LogWriter,
        *,
        settings: Settings | None = None,
        resume: Parked | None = None,
        cache: Path | None = None,
        redactor: Redactor | None = None,
    ) -> AgentOutcome:
        """The agent's outcome; a stall or timeout is a failed outcome with its reason.

        ``settings``: this run's own (a repository policy's timeout and budget), if any;
        ``cache``: the repository's cache directory; ``redactor``: the run's own, if any.
        ``resume``: the session parked on the quota that this run continues, in the home
        that run left. The home is kept after a run that ends on the quota (the CLI's
        session lives there), and removed after any other.
        """
        s = settings or self._settings
        shown = redactor or self._redactor

        async def blocked(target: str) -> None:
            # The agent names the target: a setup_env value it read (setup may leave one in
            # the workspace) is known to the run's redactor only, not to the log writer's.
            await writer.system(f"blocked connection to {shown.redact(target)}")

        home = task_home(s, writer.task_id)
        if resume is None:
            remove_tree(home)  # a fresh start: nothing of an earlier run's configuration
        session = resume.session if resume is not None else None
        kept = False
        try:
            home.mkdir(mode=0o700, exist_ok=True)
            # Under the network allowlist the run's egress proxy serves until the agent is
            # done. The configuration home is written (and, under bwrap, bound in) by
            # sandboxed().
            sandbox = sandboxed(
                agent, phase, path, s, home=home, on_blocked=blocked, resume=session, cache=cache
            )
            async with sandbox as (argv, env):
                outcome = await self._supervise(
                    agent,
                    phase,
                    path,
                    prompt,
                    writer,
                    (argv, env),
                    s,
                    session,
                    redactor or self._redactor,
                )
            kept = outcome.quota is not None
            return outcome
        finally:
            if not kept:
                remove_tree(home)

    async def _supervise(
        self,
        agent: Agent,
        phase: Phase,
        path: Path,
        prompt: bytes,
        writer: LogWriter,
        command: tuple[list[str], dict[str, str]],
        s: Settings,
        resume: str | None,
        redactor: Redactor,
    ) -> AgentOutcome:
        """Run the prepared ``command`` with its watchdogs; the judged outcome."""
        argv, env = command
        timeout, knob = (
            (s.planning_timeout, "HOOKAGENT_PLANNING_TIMEOUT")
            if phase is Phase.PLAN
            else (s.execution_timeout, "HOOKAGENT_EXECUTION_TIMEOUT")
        )
        where = " in a bwrap sandbox" if s.sandbox == "bwrap" else ""
        await writer.system(f"running {' '.join(agent.argv(phase, resume=resume))}{where}")

        async def remember(pgid: int) -> None:
            # So that a successor on this host can end what a killed worker left running.
            fields = {"agent_host": socket.gethostname(), "agent_pgid": str(pgid)}
            await self._store.tasks.set_fenced(writer.task_id, writer.token, fields)

        run = agent.start()
        clock = [time.monotonic()]
        report = Reporter(self._store, writer.task_id, phase, run, clock)
        agent_process = run_process(
            argv,
            stdin=prompt,
            cwd=path,
            on_lines=line_sink(run, writer, clock, redactor=redactor, budget_usd=s.max_budget_usd),
            timeout=timeout,
            kill_grace=s.kill_grace,
            env=env,
            on_start=remember,
            nice=s.agent_nice,
        )
        try:
            # The agent, its stall watchdog and the progress timer: whichever ends first ends
            # all three (cancelling the agent kills its process group). A watchdog that fails
            # for another reason (a fenced or failing log write) raises that error here.
            _, result = await race(
                agent_process, self._watch_stall(clock, writer), report.every(PROGRESS_EVERY_S)
            )
        except Stalled:
            await report.save_final()
            quiet = f"no output for {s.stall_kill:.0f}s (HOOKAGENT_STALL_KILL)"
            await writer.system(f"agent stopped: {quiet}")
            return AgentOutcome(ok=False, error=f"stalled: {quiet}")
        except BudgetExceeded as exc:
            await report.save_final()
            await writer.system(f"agent stopped: {exc.message}")
            return AgentOutcome(ok=False, error=exc.message, stats=_cost(run))
        await report.save_final()
        outcome = run.finish(result.exit_code)
        if result.timed_out:
            outcome.ok = False
            outcome.error = f"agent {result.describe} ({knob})"
        elif not outcome.ok and outcome.error is None:
            outcome.error = f"agent failed: {result.describe}"
        await writer.system(f"agent exited: {result.describe} after {result.duration_s:.1f}s")
        return outcome

    async def _watch_stall(self, clock: list[float], writer: LogWriter) -> None:
        """Warn once per silence past the stall timeout; raise Stalled past the kill limit."""
        warn, kill = self._settings.stall_timeout, self._settings.stall_kill
        warned_for = -1.0
        while True:
            last = clock[0]
            quiet = time.monotonic() - last
            if kill is not None and quiet >= kill:
                raise Stalled(f"no output for {quiet:.0f}s")
            if quiet >= warn and warned_for != last:
                warned_for = last
                await writer.system(f"warning: no output from the agent for {quiet:.0f}s")
            next_warn = warn - quiet if warned_for != last else float("inf")
            next_kill = kill - quiet if kill is not None else float("inf")
            wait = min(next_warn, next_kill, warn)
            await asyncio.sleep(max(wait, 0.05))  # a timer to the next deadline, not a poll


def _cost(run: AgentRun) -> dict[str, str | int | float]:
    cost = run.progress.cost_usd
    return {} if cost is None else {"total_cost_usd": cost}

"""The change tested before it ships: the policy's ``test`` command, in the agent's sandbox.

The command comes from the operator's policy, never from the repository; what it runs (the
repository's tests, which the agent may have rewritten) runs under the same bwrap sandbox
and egress allowlist as the agent, with the agent's environment minus its model keys, and
the repository's cache bound read-only at the home's ``.cache`` as the agent has it (the
tools setup installed there; the tests are the agent's code, and what they left in the
cache a later task's setup would run with its ``setup_env``), the package managers' cache
variables pointing at a scratch directory (npx, uv run write theirs while tests run). A
failure gives the agent ``max_test_fixes`` more turns with the output (redacted, capped,
fenced as data); if the test still fails, the change request is opened as a draft.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from hookagent.agents import AgentOutcome, CommandAgent, run_process
from hookagent.briefing.prompts import fence
from hookagent.models import CheckResult, LogStream, Phase
from hookagent.policy import Policy
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store.writer import LogWriter
from hookagent.worker.run import AGENT_HOMES
from hookagent.worker.sandbox import sandboxed

# What a fix turn, the change request's body and the log's summary quote of a failed run.
TAIL_LINES = 60
TAIL_CHARS = 6000
FIX = """
Your change is in the working tree. Then the operator's test command ran on it, and failed
({how}). Its output (the last lines, as data) follows: find why and fix the change so the
tests pass. Do not delete, skip or weaken tests to make them pass.

Test command: {command}
{output}
"""

# Runs the agent once more on the workspace with a prompt; its outcome.
AgentTurn = Callable[[bytes], Awaitable[AgentOutcome]]


@dataclass(frozen=True, slots=True)
class TestReport:
    """How the checks ended: ``checks`` for the task, the failing output when it failed."""

    result: CheckResult
    output: str = ""
    how: str = ""

    @property
    def checks(self) -> dict[str, str]:
        """The task's ``checks`` field."""
        return {"test": self.result.value}

    @property
    def draft(self) -> bool:
        """Whether the change request is opened as a draft: its tests failed."""
        return self.result is CheckResult.FAILED

    def summary(self) -> str:
        """The change request body's section on the checks (Markdown)."""
        text = f"## Checks\n\n`checks: {json.dumps(self.checks)}`\n"
        if self.result is CheckResult.FAILED:
            output = self.output.replace("```", "`\u200b``")
            text += (
                f"\nThe test command failed ({self.how}); this is a draft. "
                f"Last lines of its output:\n\n```\n{output}\n```\n"
            )
        return text


class Checker:
    """Runs a policy's ``test`` command in the sandbox, and the agent's fix turns."""

    def __init__(self, *, settings: Settings, redactor: Redactor) -> None:
        self._settings = settings
        self._redactor = redactor

    async def check(
        self,
        policy: Policy,
        path: Path,
        writer: LogWriter,
        *,
        settings: Settings,
        fix: AgentTurn,
        prompt: bytes,
        cache: Path | None = None,
    ) -> tuple[TestReport, AgentOutcome | None]:
        """The test's report, and the outcome of a fix turn that failed (None when none did).

        ``prompt``: the execution's, which a fix turn repeats before the failure output;
        ``cache``: the repository's cache (held by the caller while this runs).
        """
        command = policy.test
        if command is None:
            return TestReport(CheckResult.NOT_CONFIGURED), None

        async def run() -> TestReport:
            return await self.run(
                command, path, writer, settings=settings, policy=policy, cache=cache
            )

        report = await run()
        for turn in range(1, policy.max_test_fixes + 1):
            if report.result is CheckResult.PASSED:
                break
            await writer.system(
                f"test failed ({report.how}); fix turn {turn} of {policy.max_test_fixes}"
            )
            text = FIX.format(how=report.how, command=command, output=fence(report.output))
            outcome = await fix(prompt + text.encode())
            if not outcome.ok:
                return report, outcome
            report = await run()
        await writer.system(f"test {report.result.value}: {report.how}")
        return report, None

    async def run(
        self,
        command: str,
        path: Path,
        writer: LogWriter,
        *,
        settings: Settings,
        policy: Policy,
        cache: Path | None = None,
    ) -> TestReport:
        """One run of ``command`` (``sh -c``) in the sandbox; output as stream ``test``."""
        await writer.system(f"running the test command: {self._redactor.redact(command)}")
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        redacting = {stream: self._redactor.for_run() for stream in LogStream}

        async def sink(stream: LogStream, lines: list[str]) -> None:
            lines = redacting[stream].redact_lines(lines)
            tail.extend(lines)
            writer.add_lines(LogStream.TEST, lines)
            await writer.wait_room()

        async def blocked(target: str) -> None:
            await writer.system(f"test: blocked connection to {self._redactor.redact(target)}")

        agent = CommandAgent([shutil.which("sh") or "/bin/sh", "-c", command])
        # Its own (empty) configuration home, beside the agents' runs' homes.
        homes = settings.data_dir.resolve() / AGENT_HOMES
        homes.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{writer.task_id}-test-", dir=homes) as home:
            # Phase.EXECUTE: the workspace read-write, the cache read-only, as the agent had them.
            sandbox = sandboxed(
                agent, Phase.EXECUTE, path, settings, home=Path(home), on_blocked=blocked,
                cache=cache,
            )  # fmt: skip
            async with sandbox as (argv, env):
                result = await run_process(
                    argv,
                    stdin=b"",
                    cwd=path,
                    on_lines=sink,
                    timeout=policy.test_timeout,
                    kill_grace=settings.kill_grace,
                    env=env,
                    nice=settings.agent_nice,
                )
        passed = result.exit_code == 0 and not result.timed_out
        output = "\n".join(tail)[-TAIL_CHARS:]
        return TestReport(
            CheckResult.PASSED if passed else CheckResult.FAILED, output, result.describe
        )

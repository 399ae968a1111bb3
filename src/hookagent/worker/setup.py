"""The agent's workbench: its repository's cache, the setup run before it, the operator's word.

Before each agent run (planning and execution) the repository's setup prepares the
workspace: the policy's ``setup`` command (``sh -c``), else the repository's
``.hookagent/setup.sh`` (``setup = ""`` turns both off). Setup is the agent's side, not
hookagent's: it runs in the same sandbox as the agent (confine() in sandbox.py), with the
workspace writable in both phases, the repository's cache bound at the home's ``.cache``,
and the egress allowlist widened by ``setup_network_allow`` for its run only. hookagent only
checks that the script is a regular file; it never reads or runs it outside the sandbox.

``setup_env`` names variables of hookagent's environment given to setup alone: never to
the agent, and their values are redacted from every log line of the run.

A review round's workspace is the change request's branch, which holds the agent's earlier
commits: there setup is the policy's, else the script as the default branch has it (read by
hookagent's git, never the branch's copy), and it runs without ``setup_env``, since what it
installs (a package hook, a conftest) may still be the agent's code.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from hookagent.agents import run_process
from hookagent.agents.environment import agent_environment, parse_names
from hookagent.errors import AgentError
from hookagent.models import LogStream, Task
from hookagent.policy import Policy
from hookagent.redact import RedactingStream, Redactor
from hookagent.settings import Settings, split_list
from hookagent.store.writer import LogWriter
from hookagent.worker.cache import Caches
from hookagent.worker.residue import search
from hookagent.worker.sandbox import SYSTEM_DIRS, confine

SETUP_FILE = Path(".hookagent") / "setup.sh"
# A failed setup's error quotes this many of its last output lines.
TAIL_LINES = 20
# A round gives bash the default branch's script in a variable (Linux caps one at 128 KiB);
# a setup script is a few lines.
SCRIPT_MAX_BYTES = 64 * 1024
# In a variable, not an argument: an argument that names a file would be bound into the
# sandbox (binary_mounts), and the script's text is the repository's.
SCRIPT_VARIABLE = "HOOKAGENT_SETUP_SCRIPT"


@dataclass(frozen=True, slots=True)
class SetupScript:
    """What setup runs, how the log names it, and whether it is ``trusted``.

    Trusted: it runs on the checkout as the remote has it, so ``setup_env`` reaches it and
    it writes the repository's cache. A round's setup is not: the branch holds the agent's
    commits, and what it installs (a package hook, a conftest) may be the agent's code.
    """

    argv: list[str]
    name: str
    trusted: bool = True
    env: tuple[tuple[str, str], ...] = ()


def _shell(name: str) -> str:
    return shutil.which(name, path=os.pathsep.join(SYSTEM_DIRS)) or "/bin/sh"


def _policy_setup(policy: Policy, *, trusted: bool) -> SetupScript | None:
    if not (policy.setup or "").strip():
        return None
    return SetupScript([_shell("sh"), "-c", str(policy.setup)], "the policy's setup", trusted)


def checkout_setup(policy: Policy, workspace: Path) -> SetupScript | None:
    """Setup on a checkout as the remote has it (planning, execution); None: nothing to run."""
    if policy.setup is not None:
        return _policy_setup(policy, trusted=True)
    try:
        # The checkout as the remote has it, before any run: a regular file or nothing.
        found = (workspace / SETUP_FILE).lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    return SetupScript([_shell("bash"), str(SETUP_FILE)], str(SETUP_FILE))


def round_setup(policy: Policy, script: str | None) -> SetupScript | None:
    """A review round's setup, never with ``setup_env``: the policy's, else ``script``.

    ``script``: the default branch's ``.hookagent/setup.sh`` as hookagent's git read it
    (None when it has none), run by bash (``eval``) with ``$0`` set to its usual path.
    """
    if policy.setup is not None:
        return _policy_setup(policy, trusted=False)
    if script is None:
        return None
    if "\0" in script or len(script.encode()) > SCRIPT_MAX_BYTES:
        raise AgentError(
            f"{SETUP_FILE} of the default branch is not a script of at most "
            f"{SCRIPT_MAX_BYTES // 1024} KiB of text; setup not run"
        )
    argv = [_shell("bash"), "-c", f'eval "${SCRIPT_VARIABLE}"', str(SETUP_FILE)]
    name = f"{SETUP_FILE} of the default branch"
    return SetupScript(argv, name, trusted=False, env=((SCRIPT_VARIABLE, script),))


def setup_secrets(policy: Policy) -> dict[str, str]:
    """The ``setup_env`` variables hookagent's environment has (unset ones are left out)."""
    return {name: os.environ[name] for name in policy.setup_env if name in os.environ}


def operator_instructions(policy: Policy) -> str | None:
    """The policy's ``instructions`` and its ``instructions_file``'s text (read now)."""
    parts = [policy.instructions or ""]
    if policy.instructions_file is not None:
        try:
            parts.append(policy.instructions_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise AgentError(
                f"policy instructions_file {policy.instructions_file}: cannot read: {reason}"
            ) from None
    text = "\n\n".join(part.strip() for part in parts if part.strip())
    return text or None


class Workbench:
    """Prepares one agent run: the repository's cache held, setup run in the sandbox."""

    def __init__(self, *, settings: Settings, caches: Caches, redactor: Redactor) -> None:
        self._settings = settings
        self.caches = caches
        self._redactor = redactor

    def redactor(self, policy: Policy) -> Redactor:
        """The run's redactor: hookagent's secrets and the values of ``setup_env``."""
        return self._redactor.including(setup_secrets(policy).values())

    @contextlib.asynccontextmanager
    async def prepared(
        self,
        policy: Policy,
        settings: Settings,
        task: Task,
        workspace: Path,
        writer: LogWriter,
        *,
        setup: SetupScript | None,
    ) -> AsyncIterator[tuple[Path, bool]]:
        """The repository's cache, held while the agent runs, and whether a setup ran first.

        ``setup``: None for a workspace an agent run has already had (a test's fix turn, a
        resume after the quota): its files are the agent's now, and setup with the
        ``setup_env`` secrets runs only on the checkout as the remote has it.
        Raises AgentError when setup fails or times out, with its last lines.
        """
        async with self.caches.use(task.repository, task.forge) as cache:
            ran = setup is not None and await self._run_setup(
                policy, settings, workspace, cache, writer, setup
            )
            yield cache, ran

    async def _environment(
        self, policy: Policy, settings: Settings, script: SetupScript, writer: LogWriter
    ) -> dict[str, str]:
        """Setup's environment: the agent's, plus ``setup_env`` unless the script withholds it."""
        env = agent_environment(os.environ, allowed_extra=parse_names(settings.agent_env))
        env |= dict(script.env)
        if not script.trusted:
            if policy.setup_env:
                await writer.system(
                    f"setup: setup_env withheld ({', '.join(policy.setup_env)}): a review "
                    "round's branch holds the agent's earlier commits"
                )
            return env
        missing = [n for n in policy.setup_env if n not in os.environ]
        if missing:
            await writer.system(f"setup_env: not set in hookagent's environment: {missing}")
        return env | setup_secrets(policy)

    async def _check_residue(
        self, policy: Policy, workspace: Path, cache: Path, started: float, writer: LogWriter
    ) -> None:
        """Fail the task if setup left a ``setup_env`` value where the agent reads (residue.py)."""
        values = setup_secrets(policy)
        if not values:
            return
        roots = [(workspace, ""), (cache, "~/.cache/")]
        # Timestamps are coarse (a few ms): a little before the start, not after it.
        found = await asyncio.to_thread(search, roots, started - 0.05, values)
        if found.name is not None:
            shown = self.redactor(policy).redact(found.path or "")
            raise AgentError(
                f"setup left the value of {found.name} in {shown}, where the agent would read "
                "it; write credentials under ~ (setup's home is gone when it ends), not into "
                "the workspace or ~/.cache"
            )
        if found.unread:
            await writer.system(
                f"setup_env check: {found.unread} large or late files setup wrote were not read"
            )

    async def _run_setup(
        self,
        policy: Policy,
        settings: Settings,
        workspace: Path,
        cache: Path,
        writer: LogWriter,
        script: SetupScript,
    ) -> bool:
        argv, name = script.argv, script.name
        env = await self._environment(policy, settings, script, writer)
        listed = (*split_list(settings.egress_allow), *policy.setup_network_allow)
        own = settings.model_copy(update={"egress_allow": ",".join(listed)})
        where = " in a bwrap sandbox" if settings.sandbox == "bwrap" else ""
        await writer.system(f"setup: running {name}{where}")

        redactor = self.redactor(policy)

        async def blocked(target: str) -> None:
            # Setup's code names the target: a setup_env value could be in it.
            await writer.system(f"setup: blocked connection to {redactor.redact(target)}")

        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        streams: dict[LogStream, RedactingStream] = {}

        async def sink(stream: LogStream, lines: list[str]) -> None:
            shown = streams.setdefault(stream, redactor.for_run()).redact_lines(lines)
            tail.extend(shown)
            writer.add_lines(LogStream.SETUP, shown)
            await writer.wait_room()

        confined = confine(
            argv, env, workspace, own, writable=True, on_blocked=blocked, cache=cache,
            cache_writable=script.trusted,
        )  # fmt: skip
        started = time.time()
        async with confined as (wrapped, seen):
            result = await run_process(
                wrapped,
                stdin=b"",
                cwd=workspace.resolve(),
                on_lines=sink,
                timeout=policy.setup_timeout,
                kill_grace=settings.kill_grace,
                env=seen,
                nice=settings.agent_nice,
            )
        await writer.system(f"setup finished: {result.describe} after {result.duration_s:.1f}s")
        if result.exit_code == 0 and not result.timed_out:
            if script.trusted:
                await self._check_residue(policy, workspace, cache, started, writer)
            return True
        if result.timed_out:
            reason = f"setup timed out after {policy.setup_timeout:g}s (setup_timeout)"
        elif result.exit_code is not None and result.exit_code > 0:
            reason = f"setup failed (exit {result.exit_code})"
        else:
            reason = f"setup failed ({result.describe})"
        last = "\n".join(tail)
        raise AgentError(f"{reason}; its last lines:\n{last}" if last else reason)

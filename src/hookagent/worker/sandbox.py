"""The agent's sandbox: bubblewrap with the task's workspace as the only place it can write.

The agent runs commands a model chose on code a stranger may have written. Under
``HOOKAGENT_SANDBOX=bwrap`` it sees the system directories read-only, the few parts of
``/etc`` a program needs (resolver, certificates, users), its workspace (read-only while
planning), a fresh ``/tmp`` and a fresh home, and nothing else: not hookagent's data
directory, not other tasks' workspaces, not the real home. The network stays shared, as
the agent must reach its model's API. When bwrap cannot work on the host the job fails
instead of running unsandboxed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from hookagent.agents import Agent
from hookagent.agents.environment import agent_environment, parse_names
from hookagent.errors import AgentError
from hookagent.models import Phase
from hookagent.settings import Settings

# Where the agent's private home (a tmpfs) is, inside the sandbox.
SANDBOX_HOME = Path("/home/agent")
PROBE_TIMEOUT_S = 10.0
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
# The parts of /etc programs read: libraries, name resolution, TLS roots, users, git.
# Not /etc as a whole: it may hold the host's secrets (shadow, service credentials).
ETC_PATHS = (
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/crypto-policies",
    "/etc/mime.types",
    "/etc/gitconfig",
)
_BIN_DIRS = ("bin", ".bin")


def wrap(
    argv: list[str], *, workspace: Path, writable: bool, extra_ro: list[Path], home: Path | None
) -> list[str]:
    """``argv`` under bwrap: ``workspace`` bound read-write only when ``writable``."""
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [bwrap, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    for top in SYSTEM_DIRS:
        # Merged-/usr systems have /bin -> usr/bin: recreate the link rather than bind twice.
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        else:
            args += ["--ro-bind-try", top, top]
    for name in ETC_PATHS:
        args += ["--ro-bind-try", name, name]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--setenv", "TMPDIR", "/tmp"]
    if home is not None:
        args += ["--tmpfs", str(home), "--setenv", "HOME", str(home)]
    for extra in extra_ro:
        args += ["--ro-bind", str(extra), str(extra)]
    args += ["--bind" if writable else "--ro-bind", str(workspace), str(workspace)]
    # The root itself is bwrap's tmpfs: read-only too, so the binds above are all there is.
    args += ["--remount-ro", "/", "--chdir", str(workspace), "--"]
    return args + argv


def probe() -> str | None:
    """None when bwrap can build our sandbox on this host, else the reason it cannot."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (Debian/Ubuntu package: bubblewrap)"
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory(prefix="hookagent-probe-") as scratch:
        argv = wrap([true], workspace=Path(scratch), writable=True, extra_ro=[], home=SANDBOX_HOME)
        try:
            done = subprocess.run(
                argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=PROBE_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap did not run: {exc}"
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
        return f"bwrap cannot create a sandbox here: {detail}"
    return None


def binary_mounts(argv: list[str], env: Mapping[str, str]) -> list[Path]:
    """Paths outside the system directories the command needs to see to start.

    The binary's installation (``X`` for ``X/bin/tool``, else the binary's directory), its
    script interpreter's likewise, and absolute file arguments (a ``command`` agent's script)
    as single files. The unresolved binary is bound as a file (or its venv / node_modules),
    never its ``bin`` directory's parent in general: ``~/.local/bin`` would expose ``~/.local``.
    """
    found = shutil.which(argv[0], path=env.get("PATH"))
    if found is None:
        return []
    mounts = _installation(Path(found), env, depth=2)
    for arg in argv[1:]:
        path = Path(arg)
        if path.is_absolute() and path.is_file() and not _is_system(path):
            mounts.append(path)
    return list(dict.fromkeys(mounts))


async def prepare_command(
    agent: Agent, phase: Phase, workspace: Path, settings: Settings
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment to start ``agent`` with, under ``HOOKAGENT_SANDBOX``."""
    argv = agent.argv(phase)
    workspace = workspace.resolve()  # bwrap binds absolute paths; the data dir may be relative
    env = agent_environment(
        os.environ, allowed_extra=parse_names(settings.agent_env), agent_names=agent.env_names
    )
    if settings.sandbox == "none":
        return argv, env
    reason = await asyncio.to_thread(probe)
    if reason is not None:
        raise AgentError(
            f"HOOKAGENT_SANDBOX=bwrap but {reason}; refusing to run the agent unsandboxed"
        )
    mounts = binary_mounts(argv, env)
    # A mount around the workspace would show the agent every other task's workspace too.
    around = [m for m in mounts if workspace.is_relative_to(m)]
    if around:
        raise AgentError(f"the agent's installation {around[0]} contains the task workspaces")
    writable = phase is Phase.EXECUTE
    return wrap(
        argv, workspace=workspace, writable=writable, extra_ro=mounts, home=SANDBOX_HOME
    ), env


def _installation(binary: Path, env: Mapping[str, str], *, depth: int) -> list[Path]:
    mounts: list[Path] = []
    if not _is_system(binary):
        venv = binary.parent.parent
        in_env = binary.parent.name == ".bin" or (venv / "pyvenv.cfg").is_file()
        mounts.append(venv if binary.parent.name in _BIN_DIRS and in_env else binary)
    real = binary.resolve()
    if not _is_system(real):
        home = Path(env.get("HOME", "/")).resolve()
        prefix = real.parent.parent if real.parent.name in _BIN_DIRS else real.parent
        # ~/bin/tool must not bind the whole home.
        mounts.append(real.parent if home.is_relative_to(prefix) else prefix)
    interpreter = _interpreter(real, env)
    if interpreter is not None and depth > 0:
        mounts += _installation(interpreter, env, depth=depth - 1)
    return mounts


def _interpreter(script: Path, env: Mapping[str, str]) -> Path | None:
    """The program named by a ``#!`` line (``/usr/bin/env node`` looked up on PATH)."""
    try:
        with script.open("rb") as head:
            first = head.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    if not words:
        return None
    if Path(words[0]).name == "env":
        names = [w for w in words[1:] if not w.startswith("-")]
        found = shutil.which(names[0], path=env.get("PATH")) if names else None
        return Path(found) if found else None
    return Path(words[0])


def _is_system(path: Path) -> bool:
    return any(path.is_relative_to(top) for top in SYSTEM_DIRS)

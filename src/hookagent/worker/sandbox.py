"""The agent's sandbox: bubblewrap with the task's workspace as the only place it can write.

The agent runs commands a model chose on code a stranger may have written. Under
``HOOKAGENT_SANDBOX=bwrap`` it sees the system directories read-only, the few parts of
``/etc`` a program needs (resolver, certificates, users), its workspace (read-only while
planning), a fresh ``/tmp`` and a fresh home, the run's configuration home (CODEX_HOME,
GEMINI_CLI_HOME, CLAUDE_CONFIG_DIR) read-write at AGENT_HOME, and nothing else: not the rest
of hookagent's data directory, not other tasks' workspaces, not the real home. When bwrap
cannot work on the host the job fails instead of running unsandboxed.

With ``HOOKAGENT_SANDBOX_NETWORK=allowlist`` (the default) the agent also gets a network
namespace of its own, holding only loopback: its one way out is the run's egress proxy
(egress.py), whose unix socket is bound in and reached through a bridge on 127.0.0.1
(bridge.py) that ``HTTP_PROXY``/``HTTPS_PROXY`` name. ``host`` shares the host's network.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from hookagent.agents import Agent
from hookagent.agents.environment import agent_environment, parse_names
from hookagent.agents.mcp import commands
from hookagent.errors import AgentError
from hookagent.models import Phase
from hookagent.settings import Settings
from hookagent.worker import bridge
from hookagent.worker.allowlist import Allowlist
from hookagent.worker.cache import cache_environment
from hookagent.worker.egress import EgressProxy, OnBlocked

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
# Inside the sandbox: where the bridge script and the proxy's socket are bound, and the
# loopback port the bridge listens on (the namespace is the run's own: any port is free).
BRIDGE_DIR = Path("/run/hookagent")
# Where the run's configuration home (a directory of the data dir) is bound, inside.
AGENT_HOME = BRIDGE_DIR / "agent-home"
BRIDGE_PORT = 3128
# Where the repository's cache is bound, inside the sandbox's home; and where a run that
# may not write it keeps its own cache files (in the home's tmpfs, gone with the run).
CACHE_MOUNT = ".cache"
SCRATCH_CACHE = ".cache-run"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True, slots=True)
class Egress:
    """The run's way out under the allowlist: the proxy's socket and the bridge's Python."""

    socket: Path
    python: Path

    @classmethod
    def to(cls, socket: Path) -> Egress:
        """The egress through ``socket``, bridged by a Python the sandbox already shows.

        The one running hookagent if it is a system one, else the system's ``python3``,
        else hookagent's (its installation then bound read-only). The real binary, not a
        venv's link: run isolated (``-I -S``), the bridge needs only the standard library.
        """
        own = Path(os.path.realpath(sys.executable))
        system = shutil.which("python3", path=os.pathsep.join(SYSTEM_DIRS))
        if _is_system(own) or system is None:
            return cls(socket=socket, python=own)
        return cls(socket=socket, python=Path(system))

    def mounts(self) -> list[Path]:
        """What the bridge needs to see to start: its interpreter's installation."""
        return [] if _is_system(self.python) else _installation(self.python, {}, depth=0)

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` started through the bridge, which then becomes the agent."""
        inside = [str(BRIDGE_DIR / "egress.sock"), str(BRIDGE_PORT), "--"]
        return [str(self.python), "-I", "-S", str(BRIDGE_DIR / "bridge.py"), *inside, *argv]

    def binds(self) -> list[str]:
        """bwrap arguments: a network namespace of its own, the socket and the bridge."""
        script = str(Path(bridge.__file__).resolve())
        return [
            "--unshare-net",
            "--ro-bind", script, str(BRIDGE_DIR / "bridge.py"),
            "--bind", str(self.socket), str(BRIDGE_DIR / "egress.sock"),
        ]  # fmt: skip


def proxy_environment() -> dict[str, str]:
    """The agent's proxy variables: every request through the bridge, none exempt."""
    url = f"http://127.0.0.1:{BRIDGE_PORT}"
    return dict.fromkeys(PROXY_VARIABLES, url) | dict.fromkeys(NO_PROXY_VARIABLES, "")


def wrap(
    argv: list[str],
    *,
    workspace: Path,
    writable: bool,
    extra_ro: list[Path],
    home: Path | None,
    egress: Egress | None = None,
    agent_home: Path | None = None,
    cache: Path | None = None,
    cache_writable: bool = True,
) -> list[str]:
    """``argv`` under bwrap: ``workspace`` bound read-write only when ``writable``.

    With ``egress``, in a network namespace of its own whose way out is the egress proxy;
    ``agent_home`` (the run's configuration home), bound read-write at AGENT_HOME;
    ``cache`` (the repository's cache) at the home's ``.cache``, read-only unless
    ``cache_writable``.
    """
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [bwrap, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if egress is not None:
        args += egress.binds()
        extra_ro = [*extra_ro, *egress.mounts()]
        argv = egress.argv(argv)
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
        if cache is not None:
            bind = "--bind" if cache_writable else "--ro-bind"
            args += [bind, str(cache), str(home / CACHE_MOUNT)]
            if not cache_writable:
                args += ["--dir", str(home / SCRATCH_CACHE)]
    for extra in extra_ro:
        args += ["--ro-bind", str(extra), str(extra)]
    if agent_home is not None:
        # That one directory, not its parent: the data dir's other parts stay out of sight.
        args += ["--bind", str(agent_home), str(AGENT_HOME)]
    args += ["--bind" if writable else "--ro-bind", str(workspace), str(workspace)]
    # The root itself is bwrap's tmpfs: read-only too, so the binds above are all there is.
    args += ["--remount-ro", "/", "--chdir", str(workspace), "--"]
    return args + argv


def probe(*, network: bool = False) -> str | None:
    """None when bwrap can build our sandbox on this host, else the reason it cannot.

    ``network``: with a network namespace of its own, as the allowlist needs.
    """
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (Debian/Ubuntu package: bubblewrap)"
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory(prefix="hookagent-probe-") as scratch:
        argv = wrap([true], workspace=Path(scratch), writable=True, extra_ro=[], home=SANDBOX_HOME)
        if network:
            argv.insert(1, "--unshare-net")
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
        if path.is_absolute() and _is_file(path) and not _is_system(path):
            mounts.append(path)
    return list(dict.fromkeys(mounts))


def _is_file(path: Path) -> bool:
    # An argument is often no path at all (a policy's `sh -c` command): one with a name
    # too long for the file system is not a file, not an error that stops the run.
    try:
        return path.is_file()
    except OSError:
        return False


@asynccontextmanager
async def sandboxed(
    agent: Agent,
    phase: Phase,
    workspace: Path,
    settings: Settings,
    *,
    home: Path,
    on_blocked: OnBlocked,
    resume: str | None = None,
    cache: Path | None = None,
) -> AsyncIterator[tuple[list[str], dict[str, str]]]:
    """The argv and environment to start ``agent`` with, under ``HOOKAGENT_SANDBOX``.

    ``home``: the run's private configuration home, which ``agent.configure`` fills; under
    bwrap it is bound in and the variables naming it point at AGENT_HOME.
    Under bwrap with ``HOOKAGENT_SANDBOX_NETWORK=allowlist`` the run's egress proxy serves
    while the context is open: start the agent inside it, and leave once it has exited.
    ``on_blocked`` hears ``HOST:PORT`` of each connection the proxy refused. ``resume``: the
    CLI's session to continue. ``cache``: the repository's cache directory (cache.py).
    """
    env = agent_environment(
        os.environ, allowed_extra=parse_names(settings.agent_env), agent_names=agent.env_names
    )
    home = home.resolve()
    # The MCP config file is named by its path as the CLI sees it: inside bwrap, AGENT_HOME.
    named = home if settings.sandbox == "none" else AGENT_HOME
    # The MCP servers are the CLI's children, inside with it: their programs must show too.
    tools = [m for line in commands(agent.mcp_servers) for m in binary_mounts(line, env)]
    confined = confine(
        [*agent.argv(phase, resume=resume), *agent.config_argv(named)],
        env,
        workspace,
        settings,
        writable=phase is Phase.EXECUTE,
        on_blocked=on_blocked,
        model_url=model_url(agent, env),
        cache=cache,
        agent_home=home,
        configure=functools.partial(agent.configure, home),
        extra_mounts=tools,
        # No agent run writes the repository's cache (nor a test run, which runs the
        # agent's code): what it left there, a later task's setup (with its setup_env) or
        # agent would run. Only setup on the checkout as the remote has it writes it.
        cache_writable=False,
    )
    async with confined as command:
        yield command


Configure = Callable[[Mapping[str, str]], dict[str, str]]


@asynccontextmanager
async def confine(
    argv: list[str],
    env: dict[str, str],
    workspace: Path,
    settings: Settings,
    *,
    writable: bool,
    on_blocked: OnBlocked,
    model_url: str | None = None,
    cache: Path | None = None,
    agent_home: Path | None = None,
    configure: Configure | None = None,
    extra_mounts: Sequence[Path] = (),
    cache_writable: bool = True,
) -> AsyncIterator[tuple[list[str], dict[str, str]]]:
    """``argv`` and ``env`` as the sandbox runs them: the agent's, or setup's (setup.py).

    ``configure`` (given the final environment) writes ``agent_home`` and returns the
    variables naming it; ``model_url`` is allowed through the egress proxy;
    ``extra_mounts``: installations shown read-only besides ``argv[0]``'s (MCP servers');
    ``cache_writable``: False binds the cache read-only (the run persists nothing there;
    its package managers' cache variables point at a scratch directory of the home).
    """
    workspace = workspace.resolve()  # bwrap binds absolute paths; the data dir may be relative
    if settings.sandbox == "none":
        if cache is not None:
            env = env | cache_environment(cache)
        yield argv, env | (configure(env) if configure is not None else {})
        return
    allowlist = settings.sandbox_network == "allowlist"
    reason = await asyncio.to_thread(probe, network=allowlist)
    if reason is not None:
        raise AgentError(
            f"HOOKAGENT_SANDBOX=bwrap but {reason}; refusing to run the agent unsandboxed"
        )
    mounts = list(dict.fromkeys([*binary_mounts(argv, env), *extra_mounts]))
    # A mount around the workspace would show the agent every other task's workspace too;
    # one around or inside the data dir, its private git directories, spill files and AOF.
    around = [m for m in mounts if workspace.is_relative_to(m)]
    if around:
        raise AgentError(f"the agent's installation {around[0]} contains the task workspaces")
    data = settings.data_dir.resolve()
    shared = [m for m in mounts if data.is_relative_to(m) or m.is_relative_to(data)]
    if shared:
        raise AgentError(f"the agent's installation {shared[0]} overlaps hookagent's data dir")
    # HOOKAGENT_CACHE_DIR may lie elsewhere: a mount around it would show every repository's
    # cache (their setup's downloads), one inside it a cache a later setup runs from.
    caches = settings.caches.resolve()
    overlap = [m for m in mounts if caches.is_relative_to(m) or m.is_relative_to(caches)]
    if overlap:
        raise AgentError(
            f"the agent's installation {overlap[0]} overlaps hookagent's caches "
            "(HOOKAGENT_CACHE_DIR)"
        )
    home = agent_home.resolve() if agent_home is not None else None
    if cache is not None:
        # A run that may not write the cache still reads it at ~/.cache; its package
        # managers write theirs in a scratch directory of the home's tmpfs instead (pointed
        # at a read-only cache, npm and uv would fail).
        where = CACHE_MOUNT if cache_writable else SCRATCH_CACHE
        env = env | cache_environment(SANDBOX_HOME / where)

    def configured(seen: dict[str, str]) -> dict[str, str]:
        if configure is None or home is None:
            return seen
        return seen | inside(configure(seen), home)

    shaped = functools.partial(
        wrap,
        argv,
        workspace=workspace,
        writable=writable,
        extra_ro=mounts,
        home=SANDBOX_HOME,
        agent_home=home,
        cache=cache,
        cache_writable=cache_writable,
    )
    if not allowlist:
        yield shaped(), configured(env)
        return
    rules = await Allowlist.build(settings, model_url=model_url)
    proxy = EgressProxy(rules, on_blocked=on_blocked)
    try:
        await proxy.start()
    except OSError as exc:
        raise AgentError(f"the agent's egress proxy did not start: {exc}") from None
    async with contextlib.aclosing(proxy):
        env |= proxy_environment()
        wrapped = shaped(egress=Egress.to(proxy.socket_path))
        yield wrapped, configured(env)


def inside(variables: Mapping[str, str], home: Path) -> dict[str, str]:
    """``variables`` as the sandboxed agent sees them: paths in ``home`` moved to AGENT_HOME."""
    seen = dict(variables)
    for name, value in variables.items():
        path = Path(value)
        if path.is_absolute() and path.is_relative_to(home):
            seen[name] = str(AGENT_HOME / path.relative_to(home))
    return seen


def model_url(agent: Agent, env: Mapping[str, str]) -> str | None:
    """The base URL the agent CLI reaches its model at: its variable's, else its default."""
    if agent.model_endpoint is None:
        return None
    variable, default = agent.model_endpoint
    return (env.get(variable) if variable else None) or default


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

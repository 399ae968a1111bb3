"""HOOKAGENT_SANDBOX=bwrap with real bubblewrap: what the agent can and cannot reach."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from hookagent.agents.runner import run_process
from hookagent.models import LogStream, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.sandbox import SANDBOX_HOME, binary_mounts, probe, wrap
from tests.conftest import RunWorker
from tests.helpers import FAKE_AGENT, FIXTURES, REPO, fake_agent, wait_dead, wait_status

UNUSABLE = probe()
needs_bwrap = pytest.mark.skipif(
    UNUSABLE is not None, reason=f"bubblewrap cannot sandbox on this machine: {UNUSABLE}"
)
PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
SECRET = "data-dir-secret-do-not-leak"
HOME_SECRET = "home-secret-do-not-leak"


async def submit(client: httpx.AsyncClient) -> str:
    payload = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())
    payload["data"]["event"]["issue_id"] = uuid.uuid4().hex  # a new task each time
    response = await client.post("/webhooks/sentry", json=payload)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def messages(store: Store, task_id: str) -> list[str]:
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return [e.message for e in entries]


def test_plan_binds_the_workspace_read_only_and_execution_read_write(tmp_path: Path) -> None:
    argv = [sys.executable, str(FAKE_AGENT), "echo"]
    mounts = binary_mounts(argv, os.environ)
    # The venv, the interpreter it points at, and the script itself: nothing wider.
    assert FAKE_AGENT in mounts
    assert set(mounts) <= {Path(sys.prefix), Path(sys.base_prefix).resolve(), FAKE_AGENT}
    plan = wrap(argv, workspace=tmp_path, writable=False, extra_ro=mounts, home=SANDBOX_HOME)
    run = wrap(argv, workspace=tmp_path, writable=True, extra_ro=mounts, home=SANDBOX_HOME)
    tail = ["--remount-ro", "/", "--chdir", str(tmp_path), "--", *argv]
    assert plan[-len(tail) - 3 :] == ["--ro-bind", str(tmp_path), str(tmp_path), *tail]
    assert run[-len(tail) - 3 :] == ["--bind", str(tmp_path), str(tmp_path), *tail]
    for flag in ("--unshare-pid", "--die-with-parent", "--new-session", "--unshare-ipc"):
        assert flag in plan
    assert "--share-net" not in plan and "--unshare-net" not in plan


@needs_bwrap
async def test_planning_agent_sees_only_its_own_workspace(
    client: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text(f"{HOME_SECRET}\n")
    monkeypatch.setenv("HOME", str(home))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "secret.txt").write_text(f"{SECRET}\n")
    start_worker(agent_command=fake_agent("probe"), sandbox="bwrap", agent_env="PROBE_*")

    monkeypatch.setenv("PROBE_READ", "README.md")
    first = await submit(client)
    assert await wait_status(store, first, PLANNED) is TaskStatus.PENDING_APPROVAL
    assert "[stdout] read README.md: ok # payments-api" in await messages(store, first)

    other = settings.workspaces / first / "README.md"
    stray = Path("/tmp") / f"hookagent-sandbox-{uuid.uuid4().hex}"
    data_write = settings.data_dir / "planted.txt"
    reads = ["README.md", str(other), str(settings.data_dir / "secret.txt"), str(home / ".netrc")]
    own_install = Path(sys.prefix) / f"planted-{uuid.uuid4().hex}"
    writes = ["planted.txt", str(data_write), str(own_install), str(stray), f"{SANDBOX_HOME}/x"]
    monkeypatch.setenv("PROBE_READ", os.pathsep.join(reads))
    monkeypatch.setenv("PROBE_WRITE", os.pathsep.join(writes))
    second = await submit(client)
    try:
        assert await wait_status(store, second, PLANNED) is TaskStatus.PENDING_APPROVAL
    finally:
        for path in (stray, own_install):
            path.unlink(missing_ok=True)  # only there if the sandbox failed
    log = await messages(store, second)
    assert "[stdout] read README.md: ok # payments-api" in log
    # Another task's workspace, the data dir and the real home are not there at all.
    for hidden in reads[1:]:
        assert f"[stdout] read {hidden}: FileNotFoundError No such file or directory" in log, log
    # Planning cannot write its workspace; /tmp and the private
    # home are the sandbox's own tmpfs: writable, gone when the agent exits.
    assert "[stdout] write planted.txt: OSError Read-only file system" in log, log
    # Where the data dir's path is inside the sandbox is only a mount point (on the /tmp
    # tmpfs here, on the read-only root in production): whatever the write did, the real
    # data dir did not get it.
    assert any(m.startswith(f"[stdout] write {data_write}: ") for m in log), log
    # The agent's own installation is bound read-only: it cannot rewrite its interpreter.
    assert f"[stdout] write {own_install}: OSError Read-only file system" in log, log
    assert f"[stdout] write {stray}: ok" in log and f"[stdout] write {SANDBOX_HOME}/x: ok" in log
    assert f"[stdout] HOME is {SANDBOX_HOME}" in log
    assert not (settings.workspaces / second / "planted.txt").exists()
    assert not data_write.exists()
    assert not stray.exists() and not own_install.exists()
    everything = "\n".join(log)
    assert SECRET not in everything and HOME_SECRET not in everything


@needs_bwrap
async def test_plan_approve_execute_under_bwrap_pushes_the_branch(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, remotes: Path
) -> None:
    start_worker(agent_command=fake_agent("auto"), sandbox="bwrap")
    tid = await submit(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    approved = await client.post(f"/tasks/{tid}/approve")
    assert approved.status_code == 200, approved.text
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED, await messages(store, tid)
    log = await messages(store, tid)
    sandboxed = [m for m in log if m.startswith("[system] running ")]
    assert len(sandboxed) == 2 and all(m.endswith(" in a bwrap sandbox") for m in sandboxed)
    task = await store.tasks.get(tid)
    assert task.commit
    # The edit the agent made inside the sandbox is in the pushed branch.
    bare = remotes / f"{REPO}.git"
    pushed = subprocess.run(
        ["git", "-C", str(bare), "show", f"hookagent/{tid}:app.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "def safe_total(xs):" in pushed


async def test_bwrap_missing_fails_the_task_without_running_the_agent(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A PATH with git (the worker clones) and no bwrap: the host as it is before installing it.
    tools = tmp_path / "tools"
    tools.mkdir()
    git = shutil.which("git")
    assert git is not None
    (tools / "git").symlink_to(git)
    monkeypatch.setenv("PATH", str(tools))
    start_worker(agent_command=fake_agent("echo"), sandbox="bwrap")
    tid = await submit(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.FAILED
    log = await messages(store, tid)
    assert log[-1] == (
        "[system] status failed: HOOKAGENT_SANDBOX=bwrap but bwrap is not installed "
        "(Debian/Ubuntu package: bubblewrap); refusing to run the agent unsandboxed"
    )
    assert not [m for m in log if m.startswith(("[stdout]", "[system] running "))]


@needs_bwrap
async def test_a_timed_out_sandboxed_agent_leaves_no_process(tmp_path: Path) -> None:
    marker = f"hookagent-kill-{uuid.uuid4().hex}"
    argv = [sys.executable, str(FAKE_AGENT), "hang", "spawn", "/tmp/pids"]
    env = {"PATH": os.environ["PATH"], "KILL_MARKER": marker}  # inherited by the grandchild
    sandboxed = wrap(
        argv,
        workspace=tmp_path,
        writable=True,
        extra_ro=binary_mounts(argv, env),
        home=SANDBOX_HOME,
    )
    seen: list[str] = []
    running: list[int] = []

    async def sink(stream: LogStream, lines: list[str]) -> None:
        seen.extend(lines)
        if "hanging now" in lines:  # printed after the agent spawned its child
            running.extend(_processes_with(marker))

    result = await run_process(
        sandboxed, stdin=b"", cwd=tmp_path, on_lines=sink, timeout=3, kill_grace=1, env=env
    )
    assert result.timed_out and seen == ["hanging now"]
    # bwrap, its init in the new PID namespace, the agent and the agent's child.
    assert len(running) >= 3, running
    for pid in _processes_with(marker):
        await wait_dead(pid)


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # exited while we looked, or not ours to read
        if marker.encode() in environ:
            found.append(int(entry.name))
    return found


@needs_bwrap
async def test_an_agent_file_inside_the_data_dir_is_not_bound_in(
    client: httpx.AsyncClient, store: Store, settings: Settings, start_worker: RunWorker
) -> None:
    """Binding it would show the agent the data dir's neighbours: private git dirs, the AOF."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    script = (settings.data_dir / "agent.py").resolve()
    script.write_text(FAKE_AGENT.read_text())
    start_worker(agent_command=f"{sys.executable} {script} echo", sandbox="bwrap")
    tid = await submit(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.FAILED
    log = await messages(store, tid)
    assert log[-1] == (
        f"[system] status failed: the agent's installation {script} overlaps hookagent's data dir"
    ), log
    assert not [m for m in log if m.startswith("[stdout]")]


def test_a_long_shell_command_is_no_file_to_bind(tmp_path: Path) -> None:
    """A policy's `sh -c` command may start with `/` and hold a name longer than a file
    system allows: it is not bound, and it does not stop the run (ENAMETOOLONG)."""
    tool = tmp_path / "run-tests"
    tool.write_text("#!/bin/sh\n")
    long = f"/{'x' * 300} && {tool}"
    assert binary_mounts(["/bin/sh", "-c", long], {"PATH": "/usr/bin:/bin"}) == []
    # A command that is a file the operator named is still bound (read-only), as before.
    assert binary_mounts(["/bin/sh", "-c", str(tool)], {"PATH": "/usr/bin:/bin"}) == [tool]

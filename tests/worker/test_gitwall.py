"""hookagent's git never runs the agent's code: an agent plants hooks, drivers and config.

Every planted program writes a marker into a host directory the agent never touches (under
bubblewrap it cannot see it), so a marker can only come from hookagent's own git. Each
attack set runs with and without the sandbox: without it the workspace is writable while
planning too.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hookagent.errors import WorkspaceError
from hookagent.models import TaskStatus
from hookagent.store import Store
from hookagent.worker.sandbox import probe
from hookagent.worker.workspace import Workspaces
from tests.conftest import RunWorker
from tests.helpers import REPO, wait_for_line, wait_status
from tests.worker.test_policies import messages, policy_file, remote_branches, submit_alert

GIT_AGENT = Path(__file__).parent.parent / "git_agent.py"
PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
UNUSABLE = probe()
SANDBOXES = [
    "none",
    pytest.param("bwrap", marks=pytest.mark.skipif(UNUSABLE is not None, reason=str(UNUSABLE))),
]


def git_agent(*args: str | Path) -> str:
    """The HOOKAGENT_AGENT_COMMAND running tests/git_agent.py with ``args``."""
    return shlex.join([sys.executable, str(GIT_AGENT), *map(str, args)])


def git(*args: str | Path) -> str:
    return subprocess.run(
        ["git", *map(str, args)], capture_output=True, text=True, check=True
    ).stdout


async def plan_approve_execute(client: httpx.AsyncClient, store: Store) -> tuple[str, TaskStatus]:
    tid = await submit_alert(client)
    planned = await wait_status(store, tid, PLANNED)
    assert planned is TaskStatus.PENDING_APPROVAL, await messages(store, tid)
    approved = await client.post(f"/tasks/{tid}/approve")
    assert approved.status_code == 200, approved.text
    return tid, await wait_status(store, tid, ENDED)


@pytest.mark.parametrize("attacks", ["hooks", "config"])
@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_nothing_the_agent_plants_in_git_runs_and_the_change_still_pushes(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    remotes: Path, sandbox: str, attacks: str,
) -> None:  # fmt: skip
    markers = tmp_path / "markers"
    markers.mkdir()
    outside = tmp_path / "outside"  # a host directory the agent points core.worktree at
    outside.mkdir()
    (outside / "host-secret.txt").write_text("never committed\n")
    start_worker(
        agent_command=git_agent("attack", markers, attacks, outside),
        sandbox=sandbox,
        clone_timeout=20,
    )
    tid, status = await plan_approve_execute(client, store)
    log = await messages(store, tid)
    ran = sorted(p.name for p in markers.iterdir())
    assert ran == [], f"hookagent's git ran the agent's programs: {ran}"
    assert status is TaskStatus.COMPLETED, log
    planted = [m for m in log if m.startswith("[stdout] attack ") and m.endswith(": planted")]
    # Planted in execution always, and in planning too when nothing makes it read-only.
    assert len(planted) >= (2 if sandbox == "none" else 1), log

    bare = remotes / f"{REPO}.git"
    branch = f"hookagent/{tid}"
    assert "def safe_total(xs):" in git("-C", bare, "show", f"{branch}:app.py")
    tree = git("-C", bare, "ls-tree", "-r", "--full-tree", branch).splitlines()
    names = [line.split("\t", 1)[1] for line in tree]
    assert not [n for n in names if ".git" in n.split("/")], names
    # The agent's files are its change (a .githooks directory too); its .git never is.
    assert not [n for n in names if n.startswith("evil/") or "/evil/" in n], names
    assert "host-secret.txt" not in names
    # A symlink is committed as a link: its target's path, never the file it points at.
    link = next(line for line in tree if line.endswith("\tdocs/outside-link"))
    assert link.startswith("120000 blob ")
    assert git("-C", bare, "cat-file", "-p", link.split()[2]) == "/etc/hostname"
    # The change went to the configured remote: the commit pushed is the task's.
    task = await store.tasks.get(tid)
    assert git("-C", bare, "rev-parse", branch).strip() == task.commit


TOKEN = "ghp_" + "Zx9" * 12  # the shape of a GitHub token, no real one


async def test_a_token_in_a_committed_file_fails_the_task_before_push(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, remotes: Path
) -> None:
    files = ["README.md=# payments-api\\nnothing secret\\n", f"conf/ci.env=A=1\\nGH={TOKEN}\\n"]
    start_worker(agent_command=git_agent("write", "add the CI settings", *files))
    tid, status = await plan_approve_execute(client, store)
    assert status is TaskStatus.FAILED
    said = "refused to push: conf/ci.env:2 holds a github_token"
    task = await store.tasks.get(tid)
    assert task.error == said
    log = await messages(store, tid)
    assert f"[system] {said}" in log
    assert not [m for m in log if TOKEN in m], "the value itself is never written"
    assert remote_branches(remotes) == ""
    assert not [m for m in log if m.startswith("[system] committed")]


async def test_a_token_under_an_allow_secrets_in_glob_is_pushed(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, remotes: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    policy = policy_file(tmp_path, 'allow_secrets_in = ["tests/fixtures/**"]\n')
    files = [f"tests/fixtures/github/token.txt={TOKEN}\\n"]
    start_worker(agent_command=git_agent("write", "add a fixture", *files), policy_file=policy)
    tid, status = await plan_approve_execute(client, store)
    assert status is TaskStatus.COMPLETED, await messages(store, tid)
    bare = remotes / f"{REPO}.git"
    shown = git("-C", bare, "show", f"hookagent/{tid}:tests/fixtures/github/token.txt")
    assert shown == f"{TOKEN}\n"


async def test_an_auto_approved_change_past_max_files_goes_back_to_a_person(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, remotes: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    policy = policy_file(tmp_path, 'auto_approve = [{ source = "sentry", max_files = 1 }]\n')
    files = ["one.txt=1\\n", "two.txt=2\\n", "app.py=def total(xs):\\n    return 0\\n"]
    # The plan names no file, so the rule approves it; the execution changes three.
    start_worker(agent_command=git_agent("write", "tidy up", *files), policy_file=policy)
    tid = await submit_alert(client)
    # Held after an execution, not after the plan: wait for the hold's own status line.
    await wait_for_line(store, tid, "status pending_approval: no auto_approve rule")
    log = await messages(store, tid)
    task = await store.tasks.get(tid)
    assert task.status is TaskStatus.PENDING_APPROVAL, log
    assert "[system] status approved: auto-approved by policy rule 1" in "\n".join(log)
    assert log[-1] == (
        f"[system] status pending_approval: no auto_approve rule of {REPO} allows this change "
        "(3 files changed, 3 insertions(+), 1 deletion(-)); nothing pushed, an approval "
        "executes the plan again"
    )
    assert "[system] diff stat:  one.txt | 1 +" in log
    assert task.result is not None and "3 files changed" in task.result
    assert remote_branches(remotes) == ""
    # A person approves: the plan is executed again and pushed, whatever its size.
    approved = await client.post(f"/tasks/{tid}/approve")
    assert approved.status_code == 200, approved.text
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    assert f"hookagent/{tid}" in remote_branches(remotes)


async def test_a_wrecked_git_nested_repositories_and_a_linked_workspace(
    tmp_path: Path, remotes: Path
) -> None:
    task = "task-1764040000123-0a1b2c3d4e5f"
    spaces = Workspaces(tmp_path / "ws", url_template=f"file://{remotes}/{{repo}}.git", timeout=30)
    path = await spaces.clone(task, REPO)
    await spaces.checkout(path).hand_over()
    assert git("-C", path, "status", "--porcelain") == "", "the agent's copy is a clean clone"
    assert git("-C", path, "rev-parse", "origin/main") == git("-C", path, "rev-parse", "HEAD")
    assert not spaces.git_dir(task).is_relative_to(tmp_path / "ws")
    base = await spaces.checkout(path).start_branch("hookagent/t")
    # The agent's .git replaced by a pointer elsewhere; alternates, grafts: never read.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (path / ".git" / "objects" / "info" / "alternates").write_text(f"{elsewhere}\n")
    subprocess.run(["rm", "-rf", str(path / ".git")], check=True)
    (path / ".git").write_text(f"gitdir: {elsewhere}\n")
    (path / "app.py").write_text("def total(xs):\n    return 0\n")
    for nested, commit in (("vendor/empty", False), ("vendor/full", True)):
        (path / nested).mkdir(parents=True)
        git("init", "-q", path / nested)
        (path / nested / "lib.txt").write_text("vendored\n")
        if commit:
            git("-C", path / nested, "add", ".")
            git("-C", path / nested, "-c", "user.name=a", "-c", "user.email=a@b", "commit",
                "-qm", "x")  # fmt: skip
    assert await spaces.checkout(path).stage() == ["vendor/empty", "vendor/full"]
    assert await spaces.checkout(path).changed_files(base) == ["app.py"]
    sha = await spaces.checkout(path).commit_all("fix", name="t", email="t@example.com")
    await spaces.checkout(path).push("hookagent/t")
    bare = remotes / f"{REPO}.git"
    assert git("-C", bare, "rev-parse", "hookagent/t").strip() == sha
    assert git("-C", bare, "ls-tree", "-r", "--name-only", "hookagent/t").split() == [
        "README.md",
        "app.py",
    ]
    # The agent put a link in its workspace's place: hookagent's git refuses to follow it.
    subprocess.run(["rm", "-rf", str(path)], check=True)
    path.symlink_to(elsewhere)
    with pytest.raises(WorkspaceError, match="no longer a directory"):
        await spaces.checkout(path).commit_all("fix", name="t", email="t@example.com")

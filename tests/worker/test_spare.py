"""Spare checkouts: the second task takes the files checked out ahead of time, brought up to
the remote's new head; a spare that fails a check is thrown away for a clone; two workers
never share one; another repository never gets it; nothing an agent wrote reaches one."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker import mirror as mirror_module
from hookagent.worker.mirror import Mirrors
from hookagent.worker.spare import Spares
from hookagent.worker.workspace import Workspaces
from tests.conftest import RunWorker
from tests.helpers import REPO, fake_agent, make_remote, wait_status
from tests.worker.test_setup import git, push_files

FIRST, SECOND, THIRD = (f"task-176404000013{n}-0a1b2c3d4e5f" for n in range(3))
OTHER = "acme/ledger"
SPARE = "acme+payments-api"
PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}


def workspaces(data: Path, remotes: Path) -> Workspaces:
    """A worker's workspaces, as from_settings lays them out in the data dir ``data``."""
    return Workspaces(
        data / "workspaces",
        url_template=f"file://{remotes}/{{repo}}.git",
        timeout=30,
        data_dir=data,
        git_root=data / "git",
        mirrors=Mirrors(data / "mirrors"),
        spares=Spares(data / "spares"),
    )


def commit(bare: Path, tmp: Path, change: str) -> str:
    """Run the shell ``change`` in a clone of ``bare``, commit all, push; the new head."""
    work = tmp / f"edit-{uuid.uuid4().hex[:8]}"
    git(tmp, "clone", "-q", str(bare), str(work))
    subprocess.run(["sh", "-ec", change], cwd=work, check=True, capture_output=True)
    git(work, "add", "--all")
    git(work, "commit", "-q", "-m", "change")
    git(work, "push", "-q", "origin", "HEAD")
    return git(bare, "rev-parse", "main").strip()


def tree_of(path: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file below ``path``: its bytes and whether it is executable."""
    found: dict[str, tuple[bytes, bool]] = {}
    for top, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            file = Path(top) / name
            found[str(file.relative_to(path))] = (
                file.read_bytes(),
                bool(file.stat().st_mode & stat.S_IXUSR),
            )
    return found


def remote_tree(bare: Path, tmp: Path) -> dict[str, tuple[bytes, bool]]:
    """The files of the remote's head, as a plain clone checks them out."""
    work = tmp / f"look-{uuid.uuid4().hex[:8]}"
    git(tmp, "clone", "-q", str(bare), str(work))
    return tree_of(work)


def head(spaces: Workspaces, task_id: str) -> str:
    return git(spaces.git_dir(task_id), "--git-dir", ".", "rev-parse", "HEAD").strip()


@pytest.fixture
def bare(remotes: Path, tmp_path: Path) -> Path:
    """The remote, with files to delete, rename and make executable later."""
    path = remotes / f"{REPO}.git"
    push_files(
        path,
        {"gone.txt": b"deleted later\n", "old/name.txt": b"renamed later\n",
         "run.sh": b"#!/bin/sh\necho hi\n", "edit.txt": b"first\n"},
        tmp_path,
    )  # fmt: skip
    return path


async def test_the_second_task_takes_the_spare_at_the_remotes_new_head(
    tmp_path: Path, remotes: Path, bare: Path
) -> None:
    data = tmp_path / "data"
    spaces = workspaces(data, remotes)
    await spaces.clone(FIRST, REPO)
    await spaces.remove(FIRST)
    await spaces.settled()
    spare = data / "spares" / SPARE
    assert (spare / "tree" / "README.md").is_file(), "prepared after the first clone"
    assert stat.S_IMODE((data / "spares").stat().st_mode) == 0o700
    kept = (spare / "tree" / "README.md").stat().st_ino
    new_head = commit(
        bare, tmp_path,
        "git rm -q gone.txt; mkdir new; git mv old/name.txt new/name.txt; chmod +x run.sh; "
        "echo second > edit.txt; echo added > added.txt",
    )  # fmt: skip

    path = await spaces.clone(SECOND, REPO)
    assert (path / "README.md").stat().st_ino == kept, "the spare's files, not a new checkout"
    assert head(spaces, SECOND) == new_head
    assert tree_of(path) == remote_tree(bare, tmp_path)
    assert not (path / "old").exists() and not (path / "gone.txt").exists()
    assert os.access(path / "run.sh", os.X_OK)
    status = git(path, "--git-dir", str(spaces.git_dir(SECOND)), "--work-tree", str(path),
                 "status", "--porcelain")  # fmt: skip
    assert status == ""
    url = git(tmp_path, "--git-dir", str(spaces.git_dir(SECOND)), "config", "remote.origin.url")
    assert url.strip() == f"file://{remotes}/{REPO}.git"
    await spaces.checkout(path).hand_over()  # the agent's .git, as before
    assert git(path, "rev-parse", "HEAD").strip() == new_head
    await spaces.settled()
    assert (spare / "tree" / "added.txt").is_file(), "the next spare, at the new head"
    await spaces.aclose()


async def test_a_changed_file_in_a_spare_is_checked_out_again(
    tmp_path: Path, remotes: Path, bare: Path
) -> None:
    """The checkout rewrites every file whose stat no longer matches the index."""
    data = tmp_path / "data"
    spaces = workspaces(data, remotes)
    await spaces.clone(FIRST, REPO)
    await spaces.settled()
    tree = data / "spares" / SPARE / "tree"
    (tree / "edit.txt").write_text("planted, and longer than the original\n")
    (tree / "app.py").unlink()
    path = await spaces.clone(SECOND, REPO)
    assert tree_of(path) == remote_tree(bare, tmp_path)
    await spaces.aclose()


@pytest.mark.parametrize(
    "damage",
    ["remove", "objects", "head", "tree-link", "url"],
)
async def test_a_damaged_spare_is_thrown_away_for_a_clone(
    tmp_path: Path, remotes: Path, bare: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    spaces = workspaces(data, remotes)
    await spaces.clone(FIRST, REPO)
    await spaces.settled()
    spare = data / "spares" / SPARE
    if damage == "remove":
        shutil.rmtree(spare)
    elif damage == "objects":
        shutil.rmtree(spare / "git" / "objects")
    elif damage == "head":
        (spare / "git" / "HEAD").write_text("garbage\n")
    elif damage == "tree-link":
        shutil.rmtree(spare / "tree")
        (spare / "tree").symlink_to(tmp_path)
    else:
        git(spare / "git", "--git-dir", ".", "config", "remote.origin.url", "file:///elsewhere")
    new_head = commit(bare, tmp_path, "echo after > after.txt")
    path = await spaces.clone(SECOND, REPO)
    assert head(spaces, SECOND) == new_head
    assert tree_of(path) == remote_tree(bare, tmp_path)
    assert not list((data / "spares").glob(".taken-*")), "the damaged spare is gone"
    thrown = [r.getMessage() for r in caplog.records if "thrown away" in r.getMessage()]
    assert len(thrown) == (damage != "remove"), thrown
    await spaces.aclose()


async def test_two_workers_of_one_host_never_share_a_spare(
    tmp_path: Path, remotes: Path, bare: Path
) -> None:
    data = tmp_path / "data"
    one, two = workspaces(data, remotes), workspaces(data, remotes)
    await one.clone(FIRST, REPO)
    await one.settled()
    kept = (data / "spares" / SPARE / "tree" / "README.md").stat().st_ino
    paths = await asyncio.gather(one.clone(SECOND, REPO), two.clone(THIRD, REPO))
    took = [p for p in paths if (p / "README.md").stat().st_ino == kept]
    assert len(took) == 1, "exactly one of them took the spare"
    for path in paths:
        assert tree_of(path) == remote_tree(bare, tmp_path)
    await asyncio.gather(one.settled(), two.settled())
    spares = sorted(p.name for p in (data / "spares").iterdir() if not p.name.endswith(".lock"))
    assert spares == [SPARE], "one spare per repository, whoever prepared it"
    await asyncio.gather(one.aclose(), two.aclose())


async def test_a_task_on_another_repository_never_gets_the_spare(
    tmp_path: Path, remotes: Path, bare: Path
) -> None:
    other = make_remote(remotes, OTHER)
    push_files(other, {"LEDGER.md": b"the ledger\n"}, tmp_path)
    data = tmp_path / "data"
    spaces = workspaces(data, remotes)
    await spaces.clone(FIRST, REPO)
    await spaces.settled()
    kept = (data / "spares" / SPARE / "tree" / "README.md").stat().st_ino
    path = await spaces.clone(SECOND, OTHER)
    assert tree_of(path) == remote_tree(other, tmp_path)
    assert (data / "spares" / SPARE / "tree" / "README.md").stat().st_ino == kept
    # Even a spare put in the other repository's place is checked: its URL is not this one's.
    await spaces.settled()
    shutil.rmtree(data / "spares" / "acme+ledger")
    (data / "spares" / SPARE).rename(data / "spares" / "acme+ledger")
    path = await spaces.clone(THIRD, OTHER)
    assert tree_of(path) == remote_tree(other, tmp_path)
    assert git(path, "--git-dir", str(spaces.git_dir(THIRD)), "log", "--format=%s").count("\n") >= 2
    await spaces.aclose()


async def test_what_the_first_tasks_agent_writes_never_reaches_the_second_task(
    tmp_path: Path, remotes: Path, bare: Path
) -> None:
    """The agent of task 1 wrecks its workspace and its ``.git`` (a hook, an fsmonitor in
    its config, a planted file); task 2 gets the spare, made from the mirror alone."""
    data = tmp_path / "data"
    spaces = workspaces(data, remotes)
    path = await spaces.clone(FIRST, REPO)
    await spaces.checkout(path).hand_over()
    marker = tmp_path / "ran"
    script = f"#!/bin/sh\ntouch '{marker}'\n"
    for hook in ("post-checkout", "post-merge", "reference-transaction", "pre-commit"):
        (path / ".git" / "hooks").mkdir(exist_ok=True)
        (path / ".git" / "hooks" / hook).write_text(script)
        (path / ".git" / "hooks" / hook).chmod(0o755)
    (path / "monitor.sh").write_text(script)
    (path / "monitor.sh").chmod(0o755)
    with (path / ".git" / "config").open("a") as config:
        config.write(f"[core]\n\tfsmonitor = {path / 'monitor.sh'}\n\thooksPath = .git/hooks\n")
    (path / "README.md").write_text("planted by the agent\n")
    (path / "planted.txt").write_text("planted\n")
    await spaces.settled()
    await spaces.remove(FIRST)
    commit(bare, tmp_path, "echo later > later.txt")

    second = await spaces.clone(SECOND, REPO)
    await spaces.checkout(second).hand_over()
    assert not marker.exists(), "nothing of the agent's ran"
    files = tree_of(second)
    assert files == remote_tree(bare, tmp_path)
    assert "planted.txt" not in files and "monitor.sh" not in files
    private = spaces.git_dir(SECOND)
    assert not (private / "hooks").exists()
    assert "fsmonitor" not in (private / "config").read_text()
    assert "fsmonitor" not in (second / ".git" / "config").read_text()
    await spaces.aclose()


async def test_cache_clear_and_the_idle_sweep_remove_spares(
    tmp_path: Path, remotes: Path, bare: Path
) -> None:
    data = tmp_path / "data"
    spaces = workspaces(data, remotes)
    await spaces.clone(FIRST, REPO)
    await spaces.settled()
    assert spaces.spares is not None
    leftover = data / "spares" / f".taken-{FIRST}.git"
    leftover.mkdir()
    os.utime(leftover, (0, 0))
    assert spaces.spares.remove_idle(7 * 24 * 3600) == [leftover.name], "a crash's leftover"
    assert spaces.spares.remove_idle(3600) == [], "a fresh spare stays"
    assert spaces.spares.remove_idle(0) == [SPARE]
    await spaces.clone(SECOND, REPO)
    await spaces.settled()
    assert spaces.spares.clear(REPO) == [SPARE]
    assert not (data / "spares" / SPARE).exists()
    await spaces.aclose()


async def test_a_mirror_is_repacked_when_fetches_pile_up_loose_objects(
    tmp_path: Path, remotes: Path, bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    spaces = workspaces(data, remotes)
    await spaces.clone(FIRST, REPO)
    await spaces.settled()
    mirror = data / "mirrors" / f"{SPARE}.git"
    commit(bare, tmp_path, "echo one > one.txt")
    await spaces.clone(SECOND, REPO)  # its fetch leaves the few new objects loose
    counted = git(mirror, "--git-dir", ".", "count-objects", "-v")
    assert "count: 0\n" not in counted
    monkeypatch.setattr(mirror_module, "MAX_LOOSE", 0)
    await spaces.settled()
    commit(bare, tmp_path, "echo two > two.txt")
    await spaces.clone(THIRD, REPO)
    await spaces.settled()  # the next spare's preparation repacks, off the task's path
    counted = git(mirror, "--git-dir", ".", "count-objects", "-v")
    assert "count: 0\n" in counted, counted
    git(mirror, "--git-dir", ".", "fsck", "--strict")
    assert (spaces.path(THIRD) / "two.txt").read_text() == "two\n"
    await spaces.aclose()


async def test_a_renamed_default_branch_throws_the_spare_away(
    tmp_path: Path, remotes: Path, bare: Path
) -> None:
    data = tmp_path / "data"
    spaces = workspaces(data, remotes)
    await spaces.clone(FIRST, REPO)
    await spaces.settled()
    git(bare, "branch", "-m", "main", "trunk")
    push_files(bare, {"moved.txt": b"on trunk\n"}, tmp_path)
    path = await spaces.clone(SECOND, REPO)
    assert (path / "moved.txt").read_text() == "on trunk\n"
    assert git(tmp_path, "--git-dir", str(spaces.git_dir(SECOND)), "symbolic-ref", "--short",
               "HEAD").strip() == "trunk"  # fmt: skip
    await spaces.aclose()


async def test_an_unreachable_remote_fails_the_task_even_with_a_spare(
    tmp_path: Path, remotes: Path, bare: Path
) -> None:
    """The spare is no copy of the remote: a task never starts from a head it cannot check."""
    data = tmp_path / "data"
    spaces = workspaces(data, remotes)
    await spaces.clone(FIRST, REPO)
    await spaces.settled()
    bare.rename(remotes / "gone.git")
    with pytest.raises(Exception, match="git fetch failed"):
        await spaces.clone(SECOND, REPO)
    await spaces.aclose()


async def submit(client: httpx.AsyncClient) -> str:
    """A new Sentry alert on the test repository; its task id."""
    event = {"title": f"spare {uuid.uuid4().hex[:6]}", "issue_id": uuid.uuid4().hex,
             "tags": [["repository", REPO]]}  # fmt: skip
    response = await client.post("/webhooks/sentry", json={"data": {"event": event}})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def test_the_worker_starts_its_next_task_from_the_spare(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    settings: Settings,
    bare: Path,
    tmp_path: Path,
) -> None:
    worker = start_worker(agent_command=fake_agent("auto"))
    first = await submit(client)
    assert await wait_status(store, first, PLANNED) is TaskStatus.PENDING_APPROVAL
    await worker.workspaces.settled()
    spare = settings.data_dir / "spares" / SPARE
    assert (spare / "tree" / "README.md").is_file()
    assert not (spare / "tree" / "later.txt").exists()
    commit(bare, tmp_path, "echo later > later.txt")
    second = await submit(client)
    assert await wait_status(store, second, PLANNED) is TaskStatus.PENDING_APPROVAL
    await worker.workspaces.settled()
    # Taken by the second task, so prepared again at the new head; a clone would have left it.
    assert (spare / "tree" / "later.txt").read_text() == "later\n"
    assert list(settings.workspaces.iterdir()) == [], "both workspaces deleted"

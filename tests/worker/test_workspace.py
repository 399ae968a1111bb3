"""Workspaces: credentials reach git but never the disk or an error, private modes, cleanup."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hookagent.errors import WorkspaceError
from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.git import _scrub, split_credentials
from hookagent.worker.workspace import Workspaces
from tests.conftest import RunWorker
from tests.git_http import GitHttpServer
from tests.helpers import FIXTURES, REPO, fake_agent, make_remote, wait_status

TOKEN = "ghs_s3cretTokenValue42"
WRONG = "ghs_wrongTokenValue99"
TASK = "task-1764040000123-0a1b2c3d4e5f"
ALERT = (FIXTURES / "sentry-event-alert.json").read_bytes()
PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}


@pytest.fixture
def git_server(remotes: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(remotes, user="x-access-token", token=TOKEN) as server:
        yield server


def git(*args: str | Path) -> str:
    return subprocess.run(
        ["git", *map(str, args)], capture_output=True, text=True, check=True
    ).stdout.strip()


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def secrets_on_disk(path: Path, *secrets: str) -> str:
    """What ``grep -r`` finds of ``secrets`` under ``path`` (empty when nothing)."""
    patterns = [a for s in secrets for a in ("-e", s)]
    found = subprocess.run(["grep", "-rlF", *patterns, str(path)], capture_output=True, text=True)
    assert found.returncode in {0, 1}, found.stderr
    return found.stdout


def test_split_credentials_takes_userinfo_out_of_http_urls_only() -> None:
    assert split_credentials("https://x-access-token:t%40k@github.com/{repo}.git") == (
        "https://github.com/{repo}.git",
        "x-access-token",
        "t@k",
    )
    assert split_credentials("http://oauth2@host:8080/{repo}.git") == (
        "http://host:8080/{repo}.git",
        "oauth2",
        None,
    )
    ssh = "ssh://git@github.com/{repo}.git"  # the user of an ssh URL is not a secret
    assert split_credentials(ssh) == (ssh, None, None)
    assert split_credentials("file:///srv/{repo}.git") == ("file:///srv/{repo}.git", None, None)


def test_scrub_hides_url_userinfo_and_literal_secrets() -> None:
    text = (
        "fatal: unable to access 'https://x-access-token:abc@github.com/acme/api.git/': 403\n"
        "remote: token abc was rejected; see http://u:p@10.0.0.1:8080/x"
    )
    assert _scrub(text, ["abc"]) == (
        "fatal: unable to access 'https://[REDACTED]@github.com/acme/api.git/': 403\n"
        "remote: token [REDACTED] was rejected; see http://[REDACTED]@10.0.0.1:8080/x"
    )


@pytest.mark.parametrize(
    ("userinfo", "token"),
    [(f"x-access-token:{TOKEN}@", None), ("", TOKEN), ("x-access-token@", TOKEN)],
    ids=["template-userinfo", "git-token", "template-user-plus-token"],
)
async def test_credentials_reach_git_but_not_the_clone(
    tmp_path: Path, remotes: Path, git_server: GitHttpServer, userinfo: str, token: str | None
) -> None:
    host = git_server.url.removeprefix("http://")
    spaces = Workspaces(
        tmp_path / "ws",
        url_template=f"http://{userinfo}{host}/{{repo}}.git",
        timeout=30,
        token=token,
    )
    path = await spaces.clone(TASK, REPO)
    await spaces.checkout(path).hand_over()
    assert git_server.authorized > 0 and git_server.refused == 0, "the server saw credentials"
    assert git("-C", path, "config", "--get", "remote.origin.url") == f"{git_server.url}/{REPO}.git"
    header = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert secrets_on_disk(path, TOKEN, header) == ""
    assert secrets_on_disk(spaces.git_dir(TASK), TOKEN, header) == ""

    await spaces.checkout(path).start_branch("hookagent/t")
    (path / "NEW.md").write_text("new\n")
    sha = await spaces.checkout(path).commit_all("add", name="t", email="t@example.com")
    await spaces.checkout(path).push("hookagent/t")
    assert git("-C", remotes / f"{REPO}.git", "rev-parse", "hookagent/t") == sha
    assert secrets_on_disk(path, TOKEN, header) == ""
    assert secrets_on_disk(spaces.git_dir(TASK), TOKEN, header) == ""


async def test_gitlab_projects_clone_beside_the_api_with_the_gitlab_token(
    tmp_path: Path, settings: Settings
) -> None:
    """A nested project at the API's host (its ``http_url_to_repo``), as ``oauth2:<token>``."""
    token, project = "glpat-s3cretTokenValue42", "group/sub/project"
    make_remote(tmp_path / "gitlab", project)
    with GitHttpServer(tmp_path / "gitlab", user="oauth2", token=token) as server:
        own = settings.model_copy(
            update={
                "gitlab_api_url": f"{server.url}/api/v4",
                "gitlab_token": SecretStr(token),
                "workspace_dir": tmp_path / "ws",
            }
        )
        spaces = Workspaces.from_settings(own)
        path = await spaces.clone(TASK, project, "gitlab")
        await spaces.checkout(path).hand_over()
        assert server.authorized > 0 and server.refused == 0
        origin = git("-C", path, "config", "--get", "remote.origin.url")
        assert origin == f"{server.url}/{project}.git"
        (path / "NEW.md").write_text("new\n")
        sha = await spaces.checkout(path).commit_all("add", name="t", email="t@example.com")
        await spaces.checkout(path).push("hookagent/t", "gitlab")
    header = base64.b64encode(f"oauth2:{token}".encode()).decode()
    assert secrets_on_disk(path, token, header) == ""
    assert git("-C", tmp_path / "gitlab" / f"{project}.git", "rev-parse", "hookagent/t") == sha
    with pytest.raises(WorkspaceError, match="no git remote configured for forge 'bitbucket'"):
        await spaces.clone(TASK, project, "bitbucket")


async def test_wrong_token_fails_with_a_clean_message(
    tmp_path: Path, git_server: GitHttpServer
) -> None:
    host = git_server.url.removeprefix("http://")
    good = Workspaces(
        tmp_path / "ws", url_template=f"http://{host}/{{repo}}.git", timeout=30, token=TOKEN
    )
    path = await good.clone(TASK, REPO)
    (path / "NEW.md").write_text("new\n")
    await good.checkout(path).commit_all("add", name="t", email="t@example.com")
    # Same workspace, other credentials: the push uses only what this Workspaces hands git,
    # which also shows that nothing of the first token stayed in the clone.
    wrong = Workspaces(
        tmp_path / "ws", url_template=f"http://u:{WRONG}@{host}/{{repo}}.git", timeout=30
    )
    with pytest.raises(WorkspaceError) as pushed:
        await wrong.checkout(path).push("hookagent/t")
    with pytest.raises(WorkspaceError) as cloned:
        await wrong.clone(TASK, REPO)
    with pytest.raises(WorkspaceError) as missing:
        await wrong.clone(TASK, "acme/missing-repo")
    for error in (pushed.value, cloned.value, missing.value):
        assert error.message.startswith(("git push failed", "git clone failed")), error.message
        assert WRONG not in error.message and TOKEN not in error.message
        assert f"{git_server.url}/" in error.message, "git's reason (with the bare URL) is kept"
    assert "Authentication failed" in pushed.value.message
    assert git_server.refused >= 3


async def test_github_token_goes_to_github_hosts_only(
    tmp_path: Path, git_server: GitHttpServer
) -> None:
    port = git_server.url.rsplit(":", 1)[1]
    settings = Settings(
        data_dir=tmp_path / "data",
        github_token=SecretStr(TOKEN),
        # An Enterprise install: git and the API on the same host.
        github_api_url="http://127.0.0.1:1/api/v3",
        git_url_template=f"http://127.0.0.1:{port}/{{repo}}.git",
    )
    path = await Workspaces.from_settings(settings).clone(TASK, REPO)
    assert (path / "README.md").is_file()
    other = settings.model_copy(
        update={"git_url_template": f"http://localhost:{port}/{{repo}}.git"}
    )
    with pytest.raises(WorkspaceError, match="Authentication failed"):
        await Workspaces.from_settings(other).clone(TASK, REPO)


async def test_directories_are_private(tmp_path: Path, remotes: Path) -> None:
    template = f"file://{remotes}/{{repo}}.git"
    data = tmp_path / "data"
    path = await Workspaces(data / "workspaces", url_template=template, timeout=30).clone(
        TASK, REPO
    )
    assert (mode(data), mode(data / "workspaces"), mode(path)) == (0o700, 0o700, 0o700)

    loose = tmp_path / "loose"
    (loose / "workspaces").mkdir(parents=True)
    for directory in (loose, loose / "workspaces"):
        directory.chmod(0o755)
    settings = Settings(data_dir=loose, git_url_template=template)
    await Workspaces.from_settings(settings).clone(TASK, REPO)
    assert mode(loose) == mode(loose / "workspaces") == 0o700, "existing ones are tightened"


async def test_remove_deletes_whatever_the_agent_left(tmp_path: Path, remotes: Path) -> None:
    spaces = Workspaces(tmp_path / "ws", url_template=f"file://{remotes}/{{repo}}.git", timeout=30)
    path = await spaces.clone(TASK, REPO)
    locked = path / "cache" / "mod"
    locked.mkdir(parents=True)
    (locked / "f").write_text("x")
    locked.chmod(0o500)  # read-only, like Go's module cache
    assert await spaces.remove(TASK) and not path.exists()
    assert await spaces.remove(TASK), "removing what is gone is fine"

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    path.symlink_to(outside)  # the agent replaced its workspace with a link
    assert await spaces.remove(TASK)
    assert not path.is_symlink() and (outside / "keep.txt").exists()


async def test_sweep_removes_ended_and_unknown_keeps_live_and_recent(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    spaces = Workspaces(root, url_template="file:///nowhere/{repo}.git", timeout=30)
    old = time.time() - 3 * 3600
    names = {
        "live_old": "task-1-aa",
        "ended_old": "task-2-bb",
        "unknown_old": "task-3-cc",
        "failed_recent": "task-4-dd",
    }
    for key, name in names.items():
        (root / name / "src").mkdir(parents=True)
        if key.endswith("_old"):
            os.utime(root / name, (old, old))
    (root / "notes").mkdir()  # not a task's: never touched
    os.utime(root / "notes", (old, old))
    statuses = {"task-1-aa": "executing", "task-2-bb": "completed", "task-4-dd": "failed"}

    async def is_live(task_id: str) -> bool:
        return statuses.get(task_id) == "executing"

    removed = await spaces.sweep(is_live, keep_failed_s=3600)
    assert removed == ["task-2-bb", "task-3-cc"]
    assert sorted(p.name for p in root.iterdir()) == ["notes", "task-1-aa", "task-4-dd"]

    assert await spaces.sweep({"task-1-aa"}, keep_failed_s=0) == ["task-4-dd"]
    assert await spaces.sweep(set(), keep_failed_s=0) == ["task-1-aa"]
    assert sorted(p.name for p in root.iterdir()) == ["notes"]
    assert await Workspaces(tmp_path / "none", url_template="", timeout=1).sweep(set(), 0) == []


async def submit(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/webhooks/sentry", content=ALERT, headers={"content-type": "application/json"}
    )
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def test_worker_removes_the_workspace_after_plan_and_completion(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, settings: Settings
) -> None:
    worker = start_worker(agent_command=fake_agent("auto"))
    tid = await submit(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    assert not (settings.workspaces / tid).exists(), "no clone waits with the plan"
    approved = await client.post(f"/tasks/{tid}/approve")
    assert approved.status_code == 200, approved.text
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    assert (await store.tasks.get(tid)).commit is not None, "it cloned, committed and pushed"
    assert not (settings.workspaces / tid).exists(), "gone before the task reads as ended"
    await worker.workspaces.settled()  # its files are deleted off the task's path
    assert list(settings.workspaces.iterdir()) == []
    assert mode(settings.data_dir) == mode(settings.workspaces) == 0o700


@pytest.mark.parametrize("keep_hours", [0, 1])
async def test_failed_workspace_is_kept_only_within_the_window(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    settings: Settings,
    keep_hours: int,
) -> None:
    start_worker(agent_command=fake_agent("crash", "3"), keep_failed_workspaces=keep_hours)
    tid = await submit(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.FAILED
    assert (settings.workspaces / tid / "README.md").exists() is bool(keep_hours)


async def test_worker_sweeps_leftovers_when_it_starts(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, settings: Settings
) -> None:
    leftover = settings.workspaces / TASK  # a task this store never heard of
    (leftover / "src").mkdir(parents=True)
    start_worker()
    tid = await submit(client)
    # The sweep runs before the worker claims its first job, so by now it has run.
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    assert not leftover.exists()

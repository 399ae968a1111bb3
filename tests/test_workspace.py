"""Workspaces: credentials reach git but never the disk or an error, private modes, cleanup."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from hookagent.errors import WorkspaceError
from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.workspace import Workspaces, _scrub, split_credentials
from tests.git_http import GitHttpServer
from tests.helpers import FIXTURES, REPO

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
    assert git_server.authorized > 0 and git_server.refused == 0, "the server saw credentials"
    assert git("-C", path, "config", "--get", "remote.origin.url") == f"{git_server.url}/{REPO}.git"
    header = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert secrets_on_disk(path, TOKEN, header) == ""

    await spaces.start_branch(path, "hookagent/t")
    (path / "NEW.md").write_text("new\n")
    sha = await spaces.commit_all(path, "add", name="t", email="t@example.com")
    await spaces.push(path, "hookagent/t")
    assert git("-C", remotes / f"{REPO}.git", "rev-parse", "hookagent/t") == sha
    assert secrets_on_disk(path, TOKEN, header) == ""


async def test_wrong_token_fails_with_a_clean_message(
    tmp_path: Path, git_server: GitHttpServer
) -> None:
    host = git_server.url.removeprefix("http://")
    good = Workspaces(
        tmp_path / "ws", url_template=f"http://{host}/{{repo}}.git", timeout=30, token=TOKEN
    )
    path = await good.clone(TASK, REPO)
    (path / "NEW.md").write_text("new\n")
    await good.commit_all(path, "add", name="t", email="t@example.com")
    # Same workspace, other credentials: the push uses only what this Workspaces hands git,
    # which also shows that nothing of the first token stayed in the clone.
    wrong = Workspaces(
        tmp_path / "ws", url_template=f"http://u:{WRONG}@{host}/{{repo}}.git", timeout=30
    )
    with pytest.raises(WorkspaceError) as pushed:
        await wrong.push(path, "hookagent/t")
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

"""Per-repository bare mirrors: a second clone fetches only what changed, the mirror follows a
renamed default branch, and nothing the agent does to its ``.git`` reaches the mirror."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookagent.worker.mirror import Mirrors
from hookagent.worker.workspace import Workspaces
from tests.git_http import GitHttpServer
from tests.helpers import REPO
from tests.worker.test_setup import git, push_files

TOKEN = "ghs_mirrorTokenValue42"
FIRST, SECOND, THIRD = (f"task-176404000012{n}-0a1b2c3d4e5f" for n in range(3))


@pytest.fixture
def git_server(remotes: Path, tmp_path: Path) -> Iterator[GitHttpServer]:
    # Some weight to download: a clone costs the remote a pack this big, a fetch does not.
    push_files(remotes / f"{REPO}.git", {"blob.bin": os.urandom(300_000)}, tmp_path)
    with GitHttpServer(remotes, user="x-access-token", token=TOKEN) as server:
        yield server


def workspaces(tmp_path: Path, url_template: str, token: str | None = None) -> Workspaces:
    return Workspaces(
        tmp_path / "ws",
        url_template=url_template,
        timeout=30,
        token=token,
        git_root=tmp_path / "git",
        mirrors=Mirrors(tmp_path / "mirrors"),
    )


def packs(git_dir: Path) -> list[Path]:
    return sorted((git_dir / "objects" / "pack").glob("*.pack"))


async def test_a_second_task_only_fetches_from_the_remote(
    tmp_path: Path, remotes: Path, git_server: GitHttpServer
) -> None:
    spaces = workspaces(tmp_path, f"{git_server.url}/{{repo}}.git", TOKEN)
    await spaces.clone(FIRST, REPO)
    first = list(git_server.uploads)
    assert sum(size for _, size in first) > 300_000, "the first task downloads the repository"
    mirror = tmp_path / "mirrors" / "acme+payments-api.git"
    kept = packs(mirror)[0].stat().st_ino
    push_files(remotes / f"{REPO}.git", {"NEWS.md": b"a new commit\n"}, tmp_path)

    path = await spaces.clone(SECOND, REPO)
    second = git_server.uploads[len(first) :]
    wants = [body for body, _ in second if b"want " in body]
    assert wants and all(b"have " in body for body in wants), "a fetch: it says what it has"
    assert sum(size for _, size in second) < 20_000, "and gets only the new commit"
    assert (path / "NEWS.md").read_text() == "a new commit\n"
    assert packs(mirror)[0].stat().st_ino == kept, "the same mirror, fetched into"
    # The task's private git directory links the mirror's objects; pushes still go out.
    private = spaces.git_dir(SECOND)
    assert packs(private)[0].stat().st_nlink > 1
    url = git(tmp_path, "--git-dir", str(private), "config", "remote.origin.url").strip()
    assert url == f"{git_server.url}/{REPO}.git"


async def test_the_mirror_follows_a_renamed_default_branch(tmp_path: Path, remotes: Path) -> None:
    spaces = workspaces(tmp_path, f"file://{remotes}/{{repo}}.git")
    await spaces.clone(FIRST, REPO)
    bare = remotes / f"{REPO}.git"
    git(bare, "branch", "-m", "main", "trunk")
    push_files(bare, {"moved.txt": b"on trunk\n"}, tmp_path)
    path = await spaces.clone(SECOND, REPO)
    assert (path / "moved.txt").read_text() == "on trunk\n"
    private = spaces.git_dir(SECOND)
    assert (
        git(tmp_path, "--git-dir", str(private), "symbolic-ref", "--short", "HEAD").strip()
        == "trunk"
    )


async def test_an_unreachable_remote_fails_and_keeps_the_mirror(
    tmp_path: Path, remotes: Path
) -> None:
    spaces = workspaces(tmp_path, f"file://{remotes}/{{repo}}.git")
    await spaces.clone(FIRST, REPO)
    (remotes / f"{REPO}.git").rename(remotes / "gone.git")
    with pytest.raises(Exception, match="git fetch failed"):
        await spaces.clone(SECOND, REPO)
    assert (tmp_path / "mirrors" / "acme+payments-api.git" / "HEAD").is_file()


async def test_what_the_agent_does_to_its_git_never_reaches_the_mirror(
    tmp_path: Path, remotes: Path
) -> None:
    """The agent's ``.git`` is a copy: overwriting every object file in it (as an agent
    may: they are its own files) leaves the mirror, and the next task's clone, intact."""
    spaces = workspaces(tmp_path, f"file://{remotes}/{{repo}}.git")
    path = await spaces.clone(FIRST, REPO)
    await spaces.checkout(path).hand_over()
    wrecked = 0
    for top, _, files in os.walk(path / ".git" / "objects"):
        for name in files:
            target = Path(top) / name
            assert target.stat().st_nlink == 1, f"{target} is linked, not copied"
            target.chmod(0o600)
            target.write_bytes(b"planted by the agent")
            wrecked += 1
    assert wrecked > 0
    mirror = tmp_path / "mirrors" / "acme+payments-api.git"
    subprocess.run(["git", "--git-dir", str(mirror), "fsck", "--strict"], check=True,
                   capture_output=True)  # fmt: skip
    again = await spaces.clone(SECOND, REPO)
    assert (again / "README.md").read_text().startswith("# payments-api")

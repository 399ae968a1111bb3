"""Per-repository bare mirrors: a second task on a big repository downloads only what changed.

``<data dir>/mirrors/<name>.git`` (the name as the repository's cache has it) is a bare,
single-branch clone of the repository's default branch, made by hookagent's hardened git
(git.py) the first time and brought up to date with ``git fetch`` before each clone.
A task's private git directory is then cloned from the mirror on the local disk (object
files hard-linked, nothing downloaded), and its ``origin`` set back to the remote's URL.

The mirror is hookagent's alone: it sits in the data dir, which the sandbox never shows,
and no part of it is bound into one. The agent's ``.git`` is a copy of the task's private
git directory (copied, not linked), so nothing the agent writes reaches a mirror's files.
One task at a time updates and clones a mirror: an ``asyncio.Lock`` within this process and
a ``flock`` on ``<name>.lock`` between the worker processes of one host.

Fetches never gc (hookagent's git runs with ``gc.auto=0``), so loose objects and packs pile
up; :meth:`Mirrors.tidy` repacks a mirror past a bound, under its lock, when a spare
checkout is prepared (in the background, off every task's path).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Protocol

from hookagent.errors import WorkspaceError
from hookagent.worker.cache import cache_name
from hookagent.worker.files import private_dir, remove_tree, take_lock

log = logging.getLogger(__name__)

# Past these, a mirror is repacked (git's own gc.auto and gc.autoPackLimit are 6700 and 50).
MAX_LOOSE = 1000
MAX_PACKS = 20


class Git(Protocol):
    """hookagent's hardened git runner (``git.HardenedGit``)."""

    def __call__(
        self, *args: str, auth: str | None = None, url: str | None = None
    ) -> Awaitable[str]:
        """Run git with ``args``; its stdout; WorkspaceError when it fails."""
        ...


class Mirrors:
    """The bare mirrors under one root, one per repository, updated before each clone."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._locks: dict[Path, asyncio.Lock] = {}

    def path(self, repo: str, forge: str = "github") -> Path:
        """Where ``repo``'s mirror lives."""
        return self._root / f"{cache_name(repo, forge)}.git"

    @contextlib.asynccontextmanager
    async def updated(
        self, git: Git, url: str, repo: str, forge: str = "github"
    ) -> AsyncIterator[Path]:
        """The repository's mirror, fetched (or first cloned) from ``url``, held meanwhile."""
        async with self.held(repo, forge) as path:
            await self._refresh(git, url, path, forge)
            yield path

    @contextlib.asynccontextmanager
    async def held(self, repo: str, forge: str = "github") -> AsyncIterator[Path]:
        """The repository's mirror as it is (maybe none yet), locked meanwhile."""
        path = self.path(repo, forge)
        lock = self._locks.setdefault(path, asyncio.Lock())
        async with lock:
            try:
                fd = await take_lock(lambda: self._hold(path))
            except OSError as exc:
                raise WorkspaceError(f"could not lock the mirror of {repo}: {exc}") from None
            try:
                yield path
            finally:
                os.close(fd)

    async def tidy(self, git: Git, path: Path) -> bool:
        """Repack the mirror (held) once fetches have piled up loose objects or packs.

        Fetches never gc (``gc.auto=0``): each leaves a pack, or loose objects when it
        brings fewer than 100. Loose objects are packed (cheap: only they are read); too many
        packs are made one. Task git directories keep their hard links to the old files.
        Returns whether it repacked.
        """
        loose, packs = await asyncio.to_thread(_pile, path)
        if packs > MAX_PACKS:
            await git("--git-dir", str(path), "repack", "-a", "-d", "-q")
        elif loose > MAX_LOOSE:
            await git("--git-dir", str(path), "repack", "-d", "-q")
        else:
            return False
        log.info("mirror %s repacked (%d loose objects, %d packs)", path.name, loose, packs)
        return True

    def _hold(self, path: Path) -> int:
        """The mirror's lock file, locked exclusively (waiting for another process)."""
        private_dir(self._root)
        lock = path.with_suffix(".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    async def _refresh(self, git: Git, url: str, path: Path, forge: str) -> None:
        """Fetch the mirror's branch from ``url``; clone it afresh when there is none.

        A branch the remote no longer has (the default branch renamed) fails the fetch: the
        mirror is cloned again, which follows the remote's new default. Any other failure
        (the remote unreachable) fails the task as a direct clone would.
        """
        if not path.is_symlink() and (path / "HEAD").is_file():
            mirror = ("--git-dir", str(path))
            branch = (await git(*mirror, "symbolic-ref", "--short", "HEAD")).strip()
            ref = f"refs/heads/{branch}"
            try:
                await git(*mirror, "fetch", "--quiet", "--no-tags", "--", url, f"+{ref}:{ref}",
                          auth=forge, url=url)  # fmt: skip
                return
            except WorkspaceError as failed:
                # Asked only now: a fetch that works costs the remote nothing more.
                try:
                    listed = await git("ls-remote", "--", url, ref, auth=forge, url=url)
                except WorkspaceError:
                    raise failed from None
                if listed.strip():
                    raise
            log.info("mirror %s: the remote has no %s any more; cloning again", path.name, ref)
        await asyncio.to_thread(remove_tree, path)
        fresh = path.with_name(path.name + ".new")
        await asyncio.to_thread(remove_tree, fresh)
        await git(
            "clone", "--quiet", "--bare", "--single-branch", "--no-tags", "--template=",
            "--", url, str(fresh), auth=forge, url=url,
        )  # fmt: skip
        fresh.rename(path)


async def clone_mirror(git: Git, mirror: Path, private: Path, url: str) -> None:
    """Clone the (held) mirror bare into ``private``, its ``origin`` the remote's ``url``."""
    # From the local disk, object files hard-linked: nothing is downloaded.
    await git(
        "clone", "--quiet", "--bare", "--single-branch", "--no-tags", "--template=",
        "--", str(mirror), str(private), url=str(mirror),
    )  # fmt: skip
    # Pushes and the agent's ``origin`` go to the remote, never to the mirror.
    await git("--git-dir", str(private), "config", "remote.origin.url", url)


def _pile(path: Path) -> tuple[int, int]:
    """The mirror's loose objects and packs, counted (256 small directories: milliseconds)."""
    loose = packs = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(path / "objects"):
            if len(entry.name) == 2 and entry.is_dir(follow_symlinks=False):
                loose += sum(1 for _ in os.scandir(entry.path))
            elif entry.name == "pack":
                packs += sum(1 for e in os.scandir(entry.path) if e.name.endswith(".pack"))
    return loose, packs

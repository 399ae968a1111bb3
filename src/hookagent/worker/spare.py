"""Spare checkouts: the next task on a repository starts from files checked out already.

Checking 10,000 files out costs a second task more than anything else. So after a task's
clone, hookagent prepares ``<data dir>/spares/<name>`` (the name as the repository's cache
has it) in the background: ``git/``, a private bare git directory cloned from the mirror by
hookagent's hardened git, and ``tree/``, its files checked out. The next task on the
repository takes the spare with one ``rename`` (atomic: of two workers on one host, one gets
it and the other finds none), moves ``tree`` and ``git`` into its workspace and private git
directory, fetches the mirror's new head into it and checks that out: git rewrites only the
files that changed (and any whose stat no longer matches the index). Then the next spare is
prepared. A spare that fails any check is thrown away and the task clones as before.

A spare is never something an agent wrote: it is made from the mirror alone, lives in the
data dir (0700, never bound into a sandbox), and no task's workspace ever becomes one. One
spare per repository and host: a preparation holds ``<name>.lock`` (never waiting for it),
and its final ``rename`` fails when a spare is there already.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from hookagent.errors import WorkspaceError
from hookagent.worker.cache import cache_name
from hookagent.worker.files import private_dir, remove_tree
from hookagent.worker.mirror import Git, Mirrors, clone_mirror

log = logging.getLogger(__name__)

Make = Callable[[Path], Awaitable[None]]
# A scratch or taken spare (a dot name) this old was left by a crash: no making or taking lasts.
LEFTOVER_S = 3600.0


class Spares:
    """The spare checkouts under one root, one per repository, prepared in the background."""

    def __init__(self, root: Path) -> None:
        self._root = root
        # Preparations under way in this process, by spare name; a task awaits its repository's.
        self._preparing: dict[str, asyncio.Task[None]] = {}

    @property
    def root(self) -> Path:
        """The directory holding every spare."""
        return self._root

    def path(self, repo: str, forge: str = "github") -> Path:
        """Where ``repo``'s spare lives."""
        return self._root / cache_name(repo, forge)

    async def take(self, repo: str, forge: str, into: Path) -> bool:
        """Move ``repo``'s spare to ``into`` (on the same disk); False when there is none.

        A preparation under way in this process is awaited first: it has started the same
        checkout a fresh clone would start from nothing, so it is done sooner.
        """
        pending = self._preparing.get(cache_name(repo, forge))
        if pending is not None:
            await asyncio.wait({pending})  # its failure is its own (logged); never ours
        try:
            os.rename(self.path(repo, forge), into)
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("spare of %s not taken: %s", repo, exc)
            return False
        return True

    def prepare(self, git: Git, mirrors: Mirrors, *, url: str, repo: str, forge: str) -> None:
        """Start preparing ``repo``'s spare from its mirror, unless one is there or under way."""
        name = cache_name(repo, forge)
        if name in self._preparing or self.path(repo, forge).exists():
            return

        async def make(work: Path) -> None:
            """A spare in ``work``: ``git`` cloned from the mirror as it is, ``tree`` its files."""
            private, tree = work / "git", work / "tree"
            async with mirrors.held(repo, forge) as mirror:
                await clone_mirror(git, mirror, private, url)
                # Off every task's path, under the lock the fetches take anyway.
                await mirrors.tidy(git, mirror)
            await asyncio.to_thread(tree.mkdir, 0o700)
            await git("--git-dir", str(private), "--work-tree", str(tree),
                      "checkout", "--quiet", "--force")  # fmt: skip

        task = asyncio.create_task(self._prepare(name, make), name=f"spare {name}")
        self._preparing[name] = task
        task.add_done_callback(lambda done: self._forget(name, done))

    async def check_out(
        self, git: Git, mirrors: Mirrors, *, url: str, repo: str, forge: str,
        into: tuple[Path, Path],
    ) -> bool:  # fmt: skip
        """Take ``repo``'s spare into ``into`` (an empty work tree's and an absent git
        directory's paths), brought up to the mirror's head after fetching it from ``url``.

        False when there is none or it fails any check (what it left in ``into`` is the
        caller's to remove): the task clones instead. A mirror that cannot be fetched (the
        remote unreachable) raises, as it would for a clone.
        """
        target, private = into
        taken = self._root / f".taken-{private.name}"
        await asyncio.to_thread(remove_tree, taken)
        if not await self.take(repo, forge, taken):
            return False
        updating = False  # while the mirror is fetched: its failure is the task's
        try:
            await asyncio.to_thread(_move, taken, target, private)
            bare = ("--git-dir", str(private))
            if (await git(*bare, "config", "remote.origin.url")).strip() != url:
                raise WorkspaceError("it was cloned from another URL")
            branch = (await git(*bare, "symbolic-ref", "HEAD")).strip()
            updating = True
            async with mirrors.updated(git, url, repo, forge) as mirror:
                updating = False
                head = (await git("--git-dir", str(mirror), "symbolic-ref", "HEAD")).strip()
                if head != branch:
                    raise WorkspaceError(f"the default branch is now {head}")
                await git(*bare, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                          "--no-recurse-submodules", "--", str(mirror), f"+{head}:{head}",
                          url=str(mirror))  # fmt: skip
            # The index knows the old head's files: only those that differ are written.
            await git(*bare, "--work-tree", str(target), "checkout", "--quiet", "--force")
        except (WorkspaceError, OSError) as exc:
            if updating:
                raise
            log.warning("spare of %s thrown away, cloning instead: %s", repo, exc)
            return False
        finally:
            await asyncio.to_thread(remove_tree, taken)
        return True

    async def settled(self) -> None:
        """Wait until no preparation of this process is under way (benchmarks, tests)."""
        while self._preparing:
            await asyncio.wait(set(self._preparing.values()))

    async def aclose(self) -> None:
        """Cancel the preparations under way and wait for them to end."""
        pending = list(self._preparing.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def clear(self, repo: str | None = None, forge: str = "github") -> list[str]:
        """Remove ``repo``'s spare (every spare when None): the names removed."""
        if repo is not None:
            wanted = [self.path(repo, forge)]
        else:
            try:
                # Not the scratch and taken ones (dot names): a preparation or a task owns them.
                wanted = [p for p in self._root.iterdir() if p.name[0] != "." and p.is_dir()]
            except FileNotFoundError:
                return []
        removed: list[str] = []
        for path in wanted:
            if path.exists() or path.is_symlink():
                remove_tree(path)
                removed.append(path.name)
        return removed

    def remove_idle(self, idle_s: float) -> list[str]:
        """Remove the spares nobody took for ``idle_s`` seconds (no task on their repository),
        and what a crash left half made or half taken after an hour."""
        removed: list[str] = []
        try:
            found = list(self._root.iterdir())
        except FileNotFoundError:
            return removed
        now = time.time()
        for path in found:
            if path.name.endswith(".lock"):
                continue
            try:
                age = now - path.lstat().st_mtime
            except FileNotFoundError:
                continue
            if age >= (min(idle_s, LEFTOVER_S) if path.name.startswith(".") else idle_s):
                remove_tree(path)
                removed.append(path.name)
        return removed

    def _forget(self, name: str, done: asyncio.Task[None]) -> None:
        if self._preparing.get(name) is done:
            del self._preparing[name]

    async def _prepare(self, name: str, make: Make) -> None:
        """Make the spare in a scratch directory, then rename it into place; never raises."""
        try:
            fd = await asyncio.to_thread(self._lock, name)
        except OSError as exc:
            log.warning("spare %s not prepared: %s", name, exc)
            return
        if fd is None:
            return  # another worker of this host prepares it
        work = self._root / f".{name}.new-{secrets.token_hex(4)}"
        try:
            final = self._root / name
            if final.exists() or final.is_symlink():
                return
            await asyncio.to_thread(work.mkdir, 0o700)
            await make(work)
            # A directory is renamed onto an empty one at most: a spare there already stays.
            os.rename(work, final)
            os.utime(final)  # the idle sweep counts from the spare's making
        except Exception as exc:
            log.warning("spare %s not prepared: %s", name, exc)
        finally:
            try:
                await asyncio.to_thread(remove_tree, work)
            finally:
                os.close(fd)

    def _lock(self, name: str) -> int | None:
        """``<name>.lock`` locked exclusively, or None when another process holds it."""
        private_dir(self._root)
        path = self._root / f"{name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd


def _move(taken: Path, target: Path, private: Path) -> None:
    """Move a taken spare's ``tree`` and ``git`` to the task's workspace and git directory."""
    tree, git_dir = taken / "tree", taken / "git"
    for part in (tree, git_dir):
        if part.is_symlink() or not part.is_dir():
            raise WorkspaceError(f"its {part.name} is missing")
    if not (git_dir / "HEAD").is_file():
        raise WorkspaceError("its git directory has no HEAD")
    target.rmdir()  # the empty directory the task's workspace starts as
    os.rename(tree, target)
    os.rename(git_dir, private)

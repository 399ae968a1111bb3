"""Task workspaces: where a task's checkout comes from, and how it goes when done.

hookagent's git never reads anything the agent could have written. Each task has a private
git directory, ``<git root>/<task_id>.git`` beside (never inside) the workspaces: cloned
bare from the remote (or a mirror, or a spare checkout), it checks the files out into the
workspace; the verbs run on it afterwards (branch, commit, push, the agent's own ``.git``)
are :class:`~hookagent.worker.checkout.Checkout`'s, and every git process goes through the
hardened runner of git.py.

Workspaces and git directories live in 0700 roots, and are removed when the task ends;
:meth:`Workspaces.sweep` removes what a crash or a cancel left behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

from hookagent.errors import WorkspaceError
from hookagent.settings import Settings
from hookagent.worker.checkout import Checkout
from hookagent.worker.files import private_dir, remove_tree
from hookagent.worker.git import HardenedGit, Remote, on_github, split_credentials
from hookagent.worker.mirror import Mirrors, clone_mirror
from hookagent.worker.spare import Spares

log = logging.getLogger(__name__)

TASK_ID = re.compile(r"^task-[0-9]+-[0-9a-f]+$")

IsLive = Callable[[str], Awaitable[bool]] | AbstractSet[str]

# A spare nobody took for this long (no task on its repository) is removed by the sweep.
SPARE_IDLE_S = 3 * 24 * 3600
# A removed workspace or git directory waits for deletion under this prefix, in its root.
_TRASH = ".removed-"
_TRASH_AGE_S = 600.0


def _age(path: Path) -> float:
    """Seconds since ``path`` last changed; infinite when it vanished meanwhile."""
    try:
        return time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")


class Workspaces:
    """Checks a task's repository out into ``root/<task_id>``, hands out its git, removes it."""

    def __init__(
        self,
        root: Path,
        *,
        url_template: str,
        timeout: float,
        token: str | None = None,
        data_dir: Path | None = None,
        forges: Mapping[str, Remote] | None = None,
        git_root: Path | None = None,
        mirrors: Mirrors | None = None,
        spares: Spares | None = None,
    ) -> None:
        self._root = root
        # Beside the workspaces, never inside: the sandbox binds a workspace and nothing else.
        self._gits = git_root or root.parent / "git"
        # The data dir is made private too: in external-Redis mode nothing else creates it.
        self._private = [d for d in (data_dir, root, self._gits) if d is not None]
        # ``url_template`` is GitHub's (and every non-forge source's); others come by name.
        remotes = {"github": Remote.build(url_template, token), **(forges or {})}
        self._git = HardenedGit(remotes, timeout=timeout)
        # None: every clone straight from the remote (no mirror kept).
        self._mirrors = mirrors
        # None: no spare checkouts (each task checks every file out); needs the mirrors.
        self.spares = spares if mirrors is not None else None
        # Deletions of removed workspaces, run off the task's path (see :meth:`remove`).
        self._deleting: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> Workspaces:
        """Token: HOOKAGENT_GIT_TOKEN, else the template's password, else GitHub's on GitHub."""
        _, _, password = split_credentials(settings.git_url_template)
        secret = settings.git_token
        if (
            secret is None
            and password is None
            and on_github(settings.git_url_template, settings.github_api_url)
        ):
            secret = settings.github_token  # it opens the pull requests, so it may push too
        gitlab = settings.gitlab_token
        forges = {
            # GitLab takes any user with a token over https; ``oauth2`` is its documented one.
            "gitlab": Remote.build(
                settings.gitlab_clone_template,
                gitlab.get_secret_value() if gitlab is not None else None,
                user="oauth2",
            )
        }
        return cls(
            settings.workspaces,
            url_template=settings.git_url_template,
            timeout=settings.clone_timeout,
            token=secret.get_secret_value() if secret is not None else None,
            data_dir=settings.data_dir if settings.workspace_dir is None else None,
            forges=forges,
            git_root=settings.data_dir / "git",
            mirrors=Mirrors(settings.data_dir / "mirrors"),
            spares=Spares(settings.data_dir / "spares"),
        )

    def path(self, task_id: str) -> Path:
        """Where the task's clone lives."""
        if not TASK_ID.match(task_id):
            raise WorkspaceError(f"bad task id {task_id!r}")
        return self._root / task_id

    def git_dir(self, task_id: str) -> Path:
        """hookagent's private git directory of the task: outside every workspace."""
        return self._gits / f"{self.path(task_id).name}.git"

    def checkout(self, path: Path) -> Checkout:
        """The git verbs (branch, stage, diff, commit, push) on the workspace at ``path``."""
        if path.parent != self._root:
            raise WorkspaceError(f"{path.name} is not a workspace of this worker")
        return Checkout(self._git, path, self.git_dir(path.name))

    def url(self, repo: str, forge: str = "github") -> str:
        """The credential-free URL a repository is cloned from and pushed to."""
        return self._git.remote(forge).template.format(repo=repo)

    async def clone(self, task_id: str, repo: str, forge: str = "github") -> Path:
        """A fresh checkout (an earlier attempt's leftovers are removed first).

        The workspace holds the files only; :meth:`Checkout.hand_over` gives the agent its ``.git``.
        """
        target, private = self.path(task_id), self.git_dir(task_id)
        try:
            await asyncio.to_thread(remove_tree, target)
            await asyncio.to_thread(remove_tree, private)
            for directory in self._private:
                private_dir(directory)
            target.mkdir(mode=0o700)
        except OSError as exc:
            raise WorkspaceError(f"could not prepare workspace {task_id}: {exc}") from None
        url = self.url(repo, forge)
        if self._mirrors is None:
            await self._git(
                "clone", "--quiet", "--bare", "--single-branch", "--no-tags", "--template=",
                "--", url, str(private), auth=forge, url=url,
            )  # fmt: skip
        elif await self._from_spare(task_id, repo, forge, url):
            self._prepare_spare(url, repo, forge)
            return target  # checked out already
        else:
            async with self._mirrors.updated(self._git, url, repo, forge) as mirror:
                await clone_mirror(self._git, mirror, private, url)
        await self.checkout(target).check_out_head()
        self._prepare_spare(url, repo, forge)
        return target

    def _prepare_spare(self, url: str, repo: str, forge: str) -> None:
        """Start the next spare's preparation in the background (when there are spares)."""
        if self.spares is not None and self._mirrors is not None and self._one_disk(self.spares):
            self.spares.prepare(self._git, self._mirrors, url=url, repo=repo, forge=forge)

    def _one_disk(self, spares: Spares) -> bool:
        """Whether spares, workspaces and git directories share a disk (a spare is renamed)."""
        try:
            private_dir(spares.root)
            return len({p.stat().st_dev for p in (spares.root, self._root, self._gits)}) == 1
        except OSError:
            return False

    async def _from_spare(self, task_id: str, repo: str, forge: str, url: str) -> bool:
        """Check the task out from the repository's spare; False: the task clones instead."""
        if self.spares is None or self._mirrors is None:
            return False
        target, private = self.path(task_id), self.git_dir(task_id)
        if await self.spares.check_out(
            self._git, self._mirrors, url=url, repo=repo, forge=forge, into=(target, private)
        ):
            return True
        try:  # what the spare left in the task's paths
            await asyncio.to_thread(remove_tree, target)
            await asyncio.to_thread(remove_tree, private)
            target.mkdir(mode=0o700)
        except OSError as exc:
            raise WorkspaceError(f"could not prepare workspace {task_id}: {exc}") from None
        return False

    def kept(self, task_id: str) -> bool:
        """Whether the task's workspace and git directory are still on this host."""
        return all(
            path.is_dir() and not path.is_symlink()
            for path in (self.path(task_id), self.git_dir(task_id))
        )

    async def remove(self, task_id: str) -> bool:
        """Delete the task's workspace and git directory; False (warning logged) on refusal.

        Both are renamed away at once and deleted in the background: deleting 10,000 files
        is no part of the task's path, nor of the next task's.
        """
        trashed: list[Path] = []
        try:
            for path in (self.path(task_id), self.git_dir(task_id)):
                trashed += await asyncio.to_thread(_trash, path)
        except OSError as exc:
            log.warning("could not remove workspace %s: %s", task_id, exc)
            return False
        if trashed:
            deleting = asyncio.create_task(self._delete(trashed))
            self._deleting.add(deleting)
            deleting.add_done_callback(self._deleting.discard)
        return True

    async def _delete(self, paths: list[Path]) -> None:
        for path in paths:
            try:
                await asyncio.to_thread(remove_tree, path)
            except OSError as exc:
                log.warning("could not delete %s (the sweep retries): %s", path.name, exc)

    async def settled(self) -> None:
        """Wait until removed workspaces are deleted and spares prepared (benchmarks, tests)."""
        while self._deleting:
            await asyncio.wait(set(self._deleting))
        if self.spares is not None:
            await self.spares.settled()

    async def aclose(self) -> None:
        """Finish deleting removed workspaces; cancel spare preparations under way."""
        if self.spares is not None:
            await self.spares.aclose()
        while self._deleting:
            await asyncio.wait(set(self._deleting))

    def keep(self, task_id: str) -> None:
        """Start a failed task's keep window now (the sweeper reads the directory's mtime)."""
        for path in (self.path(task_id), self.git_dir(task_id)):
            if path.is_dir() and not path.is_symlink():
                try:
                    os.utime(path)
                except OSError as exc:
                    log.warning("could not mark workspace %s as kept: %s", task_id, exc)

    async def sweep(self, is_live: IsLive, keep_failed_s: float) -> list[str]:
        """Remove workspaces of tasks that ended or are gone, once unchanged for ``keep_failed_s``.

        ``is_live`` is a set of live task ids or an async predicate; names that are not task
        ids are left alone. Returns the task ids whose workspaces were removed.
        """
        entries: dict[str, Path] = {}
        for root, suffix in ((self._gits, ".git"), (self._root, "")):
            try:
                found = list(root.iterdir())
            except FileNotFoundError:
                continue
            for entry in found:
                name = entry.name.removesuffix(suffix) if suffix else entry.name
                if TASK_ID.match(name) and (suffix == "" or entry.name.endswith(suffix)):
                    entries[name] = entry  # the workspace's age counts when both exist
        for root in (self._root, self._gits):
            await asyncio.to_thread(_empty_trash, root)
        if self.spares is not None:
            await asyncio.to_thread(self.spares.remove_idle, SPARE_IDLE_S)
        removed: list[str] = []
        for task_id, entry in sorted(entries.items()):
            live = (
                task_id in is_live if isinstance(is_live, AbstractSet) else await is_live(task_id)
            )
            if live or _age(entry) < keep_failed_s:
                continue
            try:
                for path in (self.path(task_id), self.git_dir(task_id)):
                    await asyncio.to_thread(remove_tree, path)
            except OSError as exc:
                log.warning("could not remove workspace %s: %s", task_id, exc)
                continue
            removed.append(task_id)
        return removed


def _trash(path: Path) -> list[Path]:
    """Rename ``path`` to a hidden sibling, deleted later: where it went, if anywhere."""
    if path.is_symlink():
        path.unlink()
        return []
    if not path.exists():
        return []
    moved = path.with_name(f"{_TRASH}{path.name}-{os.urandom(4).hex()}")
    os.rename(path, moved)
    return [moved]


def _empty_trash(root: Path) -> None:
    """Delete what a crash left renamed in ``root`` (a deletion under way is younger)."""
    try:
        found = [p for p in root.iterdir() if p.name.startswith(_TRASH)]
    except FileNotFoundError:
        return
    for path in found:
        if _age(path) > _TRASH_AGE_S:
            remove_tree(path)

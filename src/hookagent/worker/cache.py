"""Per-repository caches that outlive a task: package managers' downloads, built wheels.

Each repository gets one directory under ``HOOKAGENT_CACHE_DIR``, named after it
(``owner+name``; ``<forge>~group+name`` for other forges than GitHub), bound read-write at
the sandbox home's ``.cache`` for setup and the agent, with the package managers' variables
pointing into it. Never shared: a repository sees its own directory and no other.

The agent writes there at will, so hookagent treats every byte inside as the agent's: it
never executes, sources or parses anything in a cache. It only measures sizes (``lstat``,
no link followed) and deletes whole directories. When a repository last used its cache is
kept outside it, as the mtime of a stamp file in ``.used/``; ``.locks/`` holds one lock
file per repository, held shared while a run uses the cache, so eviction (which takes it
exclusively, without waiting) never removes a cache in use.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from hookagent.errors import WorkspaceError
from hookagent.settings import Settings
from hookagent.worker.files import private_dir, remove_tree, take_lock

# The variables pointing the usual package managers into the cache, relative to its root.
CACHE_VARIABLES = {
    "XDG_CACHE_HOME": ".",
    "npm_config_cache": "npm",
    "PIP_CACHE_DIR": "pip",
    "UV_CACHE_DIR": "uv",
}
GIB = 1024**3
_USED = ".used"
_LOCKS = ".locks"
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_FORGE = re.compile(r"^[a-z][a-z0-9]*$")


def cache_name(repo: str, forge: str = "github") -> str:
    """The cache directory's name for ``repo`` on ``forge``; WorkspaceError when unsafe."""
    parts = repo.split("/")
    if len(parts) < 2 or not all(_SEGMENT.match(part) for part in parts):
        raise WorkspaceError(f"no cache for a repository named {repo!r}")
    if not _FORGE.match(forge):
        raise WorkspaceError(f"no cache for forge {forge!r}")
    name = "+".join(parts).lower()  # forges ignore case: Acme/API is acme/api
    return name if forge == "github" else f"{forge}~{name}"


def repository_of(name: str) -> tuple[str, str] | None:
    """``(forge, repo)`` a cache directory's name stands for; None for any other name."""
    forge, tilde, rest = name.rpartition("~")
    forge, repo = (forge if tilde else "github"), rest.replace("+", "/")
    try:
        return (forge, repo) if cache_name(repo, forge) == name else None
    except WorkspaceError:
        return None


def cache_environment(root: Path) -> dict[str, str]:
    """The package managers' cache variables for a cache seen at ``root``."""
    return {
        name: str(root / sub) if sub != "." else str(root) for name, sub in CACHE_VARIABLES.items()
    }


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One repository's cache as ``hookagent cache list`` shows it."""

    name: str
    forge: str
    repository: str
    size: int
    used: float | None

    def describe(self) -> str:
        """One line: the repository, its size and when it was last used."""
        when = (
            "never used"
            if self.used is None
            else time.strftime("last used %Y-%m-%d %H:%M:%S UTC", time.gmtime(self.used))
        )
        where = self.repository if self.forge == "github" else f"{self.forge}:{self.repository}"
        return f"{where}  {self.size / 2**20:.1f} MiB  {when}"


class Caches:
    """The per-repository cache directories under one root, with their LRU size cap."""

    def __init__(self, root: Path, *, max_bytes: int = 0) -> None:
        self._root = root
        self._max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> Caches:
        """The caches ``HOOKAGENT_CACHE_DIR`` and ``HOOKAGENT_CACHE_MAX_GB`` describe."""
        return cls(settings.caches, max_bytes=int(settings.cache_max_gb * GIB))

    def path(self, repo: str, forge: str = "github") -> Path:
        """Where ``repo``'s cache lives (absolute: bwrap binds absolute paths)."""
        return self._root.resolve() / cache_name(repo, forge)

    @contextlib.asynccontextmanager
    async def use(self, repo: str, forge: str = "github") -> AsyncIterator[Path]:
        """The repository's cache, created if missing, held in use (and stamped) meanwhile."""
        path = self.path(repo, forge)
        try:
            # Waits only while an eviction is deleting this very cache.
            fd = await take_lock(lambda: self._hold(path))
        except OSError as exc:
            raise WorkspaceError(f"could not prepare the cache of {repo}: {exc}") from None
        try:
            yield path
        finally:
            try:
                self._stamp(path.name)
            finally:
                os.close(fd)

    def entries(self) -> list[CacheEntry]:
        """Every repository's cache, least recently used first."""
        found: list[CacheEntry] = []
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(self._root)
                if entry.is_dir(follow_symlinks=False)
            )
        except FileNotFoundError:
            return []
        for name in names:
            owner = repository_of(name)
            if owner is None:
                continue
            forge, repo = owner
            found.append(CacheEntry(name, forge, repo, _size(self._root / name), self._used(name)))
        return sorted(found, key=lambda e: (e.used or 0.0, e.name))

    def clear(self, repo: str | None = None, forge: str = "github") -> tuple[list[str], list[str]]:
        """Remove ``repo``'s cache (every cache when None): (removed, busy) repository names."""
        wanted = [
            e
            for e in self.entries()
            if repo is None or (e.repository.lower(), e.forge) == (repo.lower(), forge)
        ]
        removed: list[str] = []
        busy: list[str] = []
        for entry in wanted:
            (removed if self._remove(entry.name) else busy).append(entry.repository)
        return removed, busy

    def evict(self) -> list[str]:
        """Remove least recently used caches until all fit ``HOOKAGENT_CACHE_MAX_GB``.

        A cache in use is never removed. Returns the repositories whose caches went.
        """
        if self._max_bytes <= 0:
            return []
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed: list[str] = []
        for entry in entries:
            if total <= self._max_bytes:
                break
            if self._remove(entry.name):
                total -= entry.size
                removed.append(entry.repository)
        return removed

    def _hold(self, path: Path) -> int:
        """Take ``path``'s lock shared (waiting), then create and stamp it: the lock's fd."""
        private_dir(self._root)
        for side in (_USED, _LOCKS):
            private_dir(self._root / side)
        fd = self._lock_file(path.name)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if path.is_symlink():
                path.unlink()  # only hookagent creates entries here; never follow one
            path.mkdir(mode=0o700, exist_ok=True)
            self._stamp(path.name)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _remove(self, name: str) -> bool:
        """Delete one cache unless a run holds it; False when it is in use."""
        fd = self._lock_file(name)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            remove_tree(self._root / name)
            with contextlib.suppress(FileNotFoundError):
                (self._root / _USED / name).unlink()
            return True
        finally:
            os.close(fd)

    def _lock_file(self, name: str) -> int:
        locks = self._root / _LOCKS
        private_dir(locks)
        return os.open(locks / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)

    def _stamp(self, name: str) -> None:
        stamp = self._root / _USED / name
        stamp.touch(mode=0o600)  # updates the mtime of an existing stamp too

    def _used(self, name: str) -> float | None:
        try:
            return (self._root / _USED / name).stat().st_mtime
        except FileNotFoundError:
            return None


def _size(path: Path) -> int:
    """Bytes a directory takes on disk: every entry's blocks, no symlink followed."""
    total = 0
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
    return total

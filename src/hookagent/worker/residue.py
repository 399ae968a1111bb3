"""What setup leaves where the agent reads: a ``setup_env`` value in a file stops the task.

``setup_env`` values reach setup's environment and never the agent's, but a setup script
can still write one into a file the agent then reads (``echo "...authToken=$NPM_TOKEN" >
.npmrc``): the workspace and the repository's cache outlive setup, its home does not.
After a setup that had the values, the files it created or changed (by ``st_ctime``, which
no one can set back) in the workspace and the cache are read, nearest first, for any of
them: a find fails the task before the agent starts. Package trees can be large, so the
read stops at :data:`READ_BUDGET` bytes and skips files over :data:`FILE_MAX` (the log
says so); a credential file a script writes is small and near the top.
"""

from __future__ import annotations

import collections
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

READ_BUDGET = 64 * 2**20
FILE_MAX = 2**20
# Shorter values would be found by chance in any large tree.
MIN_VALUE = 6


@dataclass(frozen=True, slots=True)
class Residue:
    """A ``setup_env`` value (by name) found in ``path``; or how far the search went."""

    name: str | None
    path: str | None
    unread: int = 0


def search(roots: Iterable[tuple[Path, str]], since: float, values: Mapping[str, str]) -> Residue:
    """The first value of ``values`` found in a file under ``roots`` changed since ``since``.

    ``roots``: each directory and how a path under it is shown (``""``, ``"~/.cache/"``).
    Symlinks are never followed. ``Residue.name`` is None when nothing was found; then
    ``unread`` counts the changed files left unread (the budget spent, or too large).
    """
    needles = {name: value.encode() for name, value in values.items() if len(value) >= MIN_VALUE}
    if not needles:
        return Residue(None, None)
    budget, unread = READ_BUDGET, 0
    queue = collections.deque((root, shown) for root, shown in roots)
    while queue:
        directory, shown = queue.popleft()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                if entry.name != ".git":
                    queue.append((Path(entry.path), f"{shown}{entry.name}/"))
                continue
            if not stat.S_ISREG(info.st_mode) or info.st_ctime < since:
                continue
            if info.st_size > FILE_MAX or info.st_size > budget:
                unread += 1
                continue
            budget -= info.st_size
            found = _read(Path(entry.path), needles)
            if found is not None:
                return Residue(found, f"{shown}{entry.name}")
    return Residue(None, None, unread)


def _read(path: Path, needles: Mapping[str, bytes]) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(FILE_MAX + 1)
    return next((name for name, needle in needles.items() if needle in data), None)

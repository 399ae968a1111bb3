"""A run's configuration home, started from the operator's template: copied, never linked.

The agent writes into its configuration dir (sessions, caches, history); a copy keeps the
template as the operator left it and the next run free of what this one wrote. Only regular
files and directories are copied: a symlink is skipped, so neither hookagent (writing its
own configuration over the copy) nor the agent follows one out of the template.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hookagent.errors import AgentError


def start_home(target: Path, template: Path | None, *, setting: str) -> None:
    """``target`` created (mode 0700), holding a copy of ``template`` when there is one.

    ``setting``: the variable naming the template, for the error when it is no directory.
    A ``target`` left by an earlier run of the task (a session parked on the quota, resumed
    now) keeps what the CLI wrote there, but each of the template's entries is copied
    afresh over whatever the agent made of it.
    """
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    resumed = target.is_dir() and not target.is_symlink()
    if template is None:
        if not resumed:
            target.mkdir(mode=0o700)
        return
    if not template.is_dir():
        raise AgentError(f"{setting} {template} is not a directory")
    try:
        if resumed:
            _recopy(template, target)
        else:
            _copy_tree(template, target)
    except OSError as exc:
        raise AgentError(f"{setting} {template} could not be copied: {exc}") from None


def _recopy(source: Path, target: Path) -> None:
    """The template's top-level entries copied again over ``target``'s (never followed)."""
    with os.scandir(source) as entries:
        for entry in entries:
            there = target / entry.name
            if there.is_dir() and not there.is_symlink():
                shutil.rmtree(there)
            elif there.exists() or there.is_symlink():
                there.unlink()
            if entry.is_dir(follow_symlinks=False):
                _copy_tree(Path(entry.path), there)
            elif entry.is_file(follow_symlinks=False):
                _copy_file(Path(entry.path), there)


def _copy_tree(source: Path, target: Path) -> None:
    target.mkdir(mode=0o700)
    with os.scandir(source) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _copy_tree(Path(entry.path), target / entry.name)
            elif entry.is_file(follow_symlinks=False):
                _copy_file(Path(entry.path), target / entry.name)


def _copy_file(source: Path, target: Path) -> None:
    # O_NOFOLLOW: a file swapped for a symlink since the listing is refused, not followed.
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as src, target.open("xb") as dst:
        shutil.copyfileobj(src, dst)
    target.chmod(0o600)


def write_private(path: Path, text: str) -> None:
    """``text`` as a new 0600 file at ``path``, whatever the agent left there.

    A resumed run's home is the agent's: in place of the file there may be a symlink (which
    would be followed), a directory, or a named pipe (opening it to write would block the
    worker for ever). Whatever it is goes first; the file is then created, never opened.
    """
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
